// Runs as root, PID 1 of a child PID namespace with a small pid_max. Keeps
// PIDs rolling over with a fork loop, records every rollover it sees (the
// namespace's ns_last_pid going down, with CLOCK_BOOTTIME bounds), and runs
// unprivileged snapshots meanwhile, until it has seen at least MIN_ROLLOVERS
// rollovers (or a minute has passed). Prints {rollovers, snapshots} as JSON.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nativeAddon } from '../../dist/src/native/addon.js';

const count = Number(process.argv[2] ?? 60);
const minMs = Number(process.argv[3] ?? 3000);
// On a loaded machine the fork loops can be slow or the poller descheduled
// for whole rounds of the cursor, so a fixed duration may see only a few
// rollovers; the snapshots go on until enough were seen for the check to
// mean something.
// Under qemu's emulator (PIDGEN_TEST_SLOW, test/helpers/slow.ts) forks are
// tens of times slower, so the minute scales too, up to 15 minutes.
const MIN_ROLLOVERS = 10;
const MAX_MS = Math.min(60_000 * Number(process.env.PIDGEN_TEST_SLOW || 1), 15 * 60_000);
const addon = nativeAddon();
const lastPid = () => Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));

const forkers = [0, 1].map(() => spawn('bash', ['-c', 'while :; do /bin/true; done'], { stdio: 'ignore' }));
const probe = join(import.meta.dirname, 'cursor-snapshots.mjs');
const snapshots = spawn(
  'setpriv',
  ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, probe, String(count), String(minMs), 'stdin'],
  { stdio: ['pipe', 'pipe', 'inherit'] },
);
const started = Date.now();
let out = '';
snapshots.stdout.on('data', (d) => (out += d.toString()));
let done = false;
snapshots.on('exit', () => (done = true));

// Poll the cursor; a decrease between two reads is a rollover somewhere
// between the start of the earlier read and the end of the later one. The
// clock is read on both sides of each read: the poller can be preempted
// between a read and a clock read, and a bound taken on the wrong side
// would place the rollover later than it was.
const rollovers = [];
let prevStart = addon.boottimeNs();
let prev = lastPid();
while (!done) {
  const start = addon.boottimeNs();
  const now = lastPid();
  const end = addon.boottimeNs();
  if (now < prev) rollovers.push({ afterNs: prevStart.toString(), beforeNs: end.toString() });
  prev = now;
  prevStart = start;
  if (snapshots.stdin.writable && (rollovers.length >= MIN_ROLLOVERS || Date.now() - started > MAX_MS)) snapshots.stdin.end();
  await new Promise((r) => setImmediate(r));
}
for (const forker of forkers) forker.kill('SIGKILL');
console.log(JSON.stringify({ rollovers, snapshots: out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) }));
