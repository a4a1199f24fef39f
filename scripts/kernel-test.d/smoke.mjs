#!/usr/bin/env node
// The short guest smoke test CI runs on Debian 12's 6.1 (scripts/guest-smoke):
// `pidgen doctor` and one snapshot, as a user runs them, checked for what a
// user on that kernel would notice. The whole suite takes about an hour in a
// TCG guest, too long for CI; README "Testing on other kernels" has its runs.
//
// Expectations come from the kernel's version, the way pidgen itself decides
// (src/host/kernel.ts): the BPF guard from 5.12, the task iterator from 5.8.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const { bpfGuardKernelGap } = await import(join(root, 'dist', 'src', 'host', 'kernel.js'));

let failed = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${what}`);
  if (!ok) failed++;
}
function run(args) {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  if (result.stderr.trim()) process.stderr.write(result.stderr.replace(/^/gm, `pidgen ${args[0]}: `));
  return result;
}

const gap = bpfGuardKernelGap();
const doctor = run(['doctor', '--json']);
check(doctor.status === 0, `pidgen doctor exits 0 (got ${doctor.status})`);
const report = JSON.parse(doctor.stdout);
for (const c of report.checks) console.log(`      ${c.status.padEnd(5)} ${c.name}: ${c.detail}`);
check(!report.checks.some((c) => c.status === 'error' || c.status === 'fail'), 'no doctor check failed');
check(report.guard.kind === (gap ? 'cursor' : 'bpf'), `doctor picks guard ${report.guard.kind}${report.guard.attach ? ` via ${report.guard.attach}` : ''} (${gap ?? 'the BPF guard loads here'})`);

const snap = run(['snapshot', '--format', 'json', '--require-coherent']);
check(snap.status === 0, `pidgen snapshot --require-coherent exits 0 (got ${snap.status})`);
if (snap.status === 0) {
  const s = JSON.parse(snap.stdout);
  check(s.guard.kind === report.guard.kind, `the snapshot used the guard doctor named (${s.guard.kind})`);
  check(s.source === report.source.kind, `the snapshot used the source doctor named (${s.source})`);
  const init = s.processes.find((p) => p.pid === 1);
  check(s.processes.length > 10 && init !== undefined, `${s.processes.length} processes, PID 1 among them (${init?.comm})`);
  const self = s.processes.find((p) => p.cmdline.includes('snapshot') && p.comm === 'node');
  check(self !== undefined, "the snapshot lists its own pidgen process with its argv");
  console.log(`      kernel ${s.host.kernel}: ${s.stats.tasks} tasks in ${(Number(s.stats.durationNs) / 1e6).toFixed(1)} ms, coherent, guard ${s.guard.kind}${s.guard.attach ? ` (${s.guard.attach})` : ''}, source ${s.source}${s.stats.cmdlineFrom ? ` (argv from ${s.stats.cmdlineFrom})` : ''}`);
}
process.exit(failed ? 1 : 0);
