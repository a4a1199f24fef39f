// `snapshot()` and `pidgen snapshot` on the real kernel: exact repair of a
// PID reused inside the window, vanished processes, output formats, schema.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { readProcessEntries } from '../../src/source/procfs.js';
import { snapshot } from '../../src/snapshot/snapshot.js';
import { runCli } from '../helpers/cli.js';
import { expectNothingLeft, isRoot } from '../helpers/kernel.js';
import { slow } from '../helpers/slow.js';

const root = join(import.meta.dirname, '..', '..');
const schema = JSON.parse(readFileSync(join(root, 'schema', 'snapshot-2.json'), 'utf8')) as object;
const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);

interface ReuseReport {
  oldPid: number;
  freshPid: number;
  freshStartTicks: string;
  snapshot: {
    coherent: boolean;
    attempts: number;
    window: { startNs: string; endNs: string };
    guard: { kind: string; attach?: string };
    reused: { pid: number; atNs: string; holder?: number }[];
    exited: { pid: number; tid: number; comm: string; startNs: string; exitNs: string }[];
    processes: { pid: number; comm: string; startNs: string; startExact: boolean; pidfdIno?: string }[];
    stats: { repaired: number };
  };
}

/** /proc's start times are clock ticks (USER_HZ 100): 10 ms in nanoseconds. */
const TICK_NS = 10_000_000n;

/**
 * The attach points whose log records carry the new task's own start time:
 * the task_newtask hooks. fexit/alloc_pid runs before the task exists, so
 * its records carry the allocation time (exactStart false).
 */
const logsTaskStart = (attach: string | undefined): boolean => /\/task_newtask$/.test(attach ?? '');

/** Kills a process the walk saw and hands its PID to a new one, inside the window. */
function reuseDuringSnapshot(maxAttempts: number, withhold?: 'withhold-new' | 'withhold-both'): ReuseReport {
  const probe = join(root, 'test', 'helpers', 'reuse-during-snapshot.mjs');
  const result = spawnSync('unshare', ['-pfm', '--mount-proc', process.execPath, probe, String(maxAttempts), ...(withhold ? [withhold] : [])], {
    encoding: 'utf8',
    timeout: slow(60_000),
  });
  if (result.status !== 0) throw new Error(`reuse probe failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as ReuseReport;
}

describe.runIf(isRoot)('[kernel] exact repair', () => {
  // Every test here takes its snapshot with guard 'bpf'.
  const gap = bpfGuardKernelGap();
  beforeEach((ctx) => {
    if (gap) ctx.skip(gap);
  });

  it('a PID reused between the walk and the checkpoint is found from the log, re-read alone, and listed in reused, with the new task\'s exact start where the attach point logs it', () => {
    const report = reuseDuringSnapshot(3);
    const snap = report.snapshot;
    // The setup really reused the number.
    expect(report.freshPid).toBe(report.oldPid);
    expect(snap.coherent).toBe(true);
    expect(snap.attempts).toBe(2);
    // Only that one process was re-read, not the whole /proc.
    expect(snap.stats.repaired).toBe(1);
    const entry = snap.processes.find((p) => p.pid === report.oldPid);
    expect(entry).toBeDefined();
    // The entry now describes the new task: its start matches /proc's ticks.
    expect(BigInt(entry!.startNs) / TICK_NS).toBe(BigInt(report.freshStartTicks));
    // The re-read comes from /proc (ticks). The log's start is taken as exact
    // only where the attach point logs the task's own start_boottime and the
    // pidfs inode (6.9+) proves the record is this very task.
    const exact = logsTaskStart(snap.guard.attach) && entry!.pidfdIno !== undefined;
    expect(entry!.startExact, `attach ${snap.guard.attach}, pidfdIno ${entry!.pidfdIno}`).toBe(exact);
    const [handOver] = snap.reused;
    // The log also saw who forked it: the probe, PID 1 of its namespace.
    expect(snap.reused).toEqual([{ pid: report.oldPid, atNs: handOver!.atNs, holder: report.oldPid, creator: { pid: 1, tid: 1 } }]);
    if (exact) {
      // The hand-over happened when the new task started.
      expect(handOver!.atNs).toBe(entry!.startNs);
    } else {
      // Never falsely exact: a tick-precision start, as /proc gave it.
      expect(BigInt(entry!.startNs) % TICK_NS).toBe(0n);
      // The hand-over time is the log's: inside the window, and no later
      // than the tick the new task started in (fexit logs the allocation,
      // a few microseconds before the task's start).
      const atNs = BigInt(handOver!.atNs);
      expect(atNs).toBeGreaterThanOrEqual(BigInt(snap.window.startNs));
      expect(atNs).toBeLessThanOrEqual(BigInt(snap.window.endNs));
      expect(atNs).toBeLessThan((BigInt(report.freshStartTicks) + 1n) * TICK_NS);
    }
    // The old task came from before the window and died in it: listed as exited.
    expect(snap.exited).toEqual([expect.objectContaining({ pid: report.oldPid, tid: report.oldPid, comm: 'sleep' })]);
  });

  it('the window-end race, held open on purpose: the new task\'s record never reaches a drain, and the stale entry is still not listed', () => {
    const report = reuseDuringSnapshot(3, 'withhold-new');
    const snap = report.snapshot;
    expect(report.freshPid).toBe(report.oldPid);
    expect(snap.coherent).toBe(true);
    const entry = snap.processes.find((p) => p.pid === report.oldPid);
    // Whatever is listed under the number, it is not the old task: the old
    // task's exit record (written before its PID was freed) made the last
    // checkpoint re-read it, and it was gone.
    if (entry) expect(BigInt(entry.startNs) / TICK_NS).toBe(BigInt(report.freshStartTicks));
    expect(snap.exited.map((t) => t.tid)).toContain(report.oldPid);
  });

  it('the exit record is what closes it: with that record held back too (the kernel never does this), the stale old task is listed', () => {
    const report = reuseDuringSnapshot(3, 'withhold-both');
    const entry = report.snapshot.processes.find((p) => p.pid === report.oldPid);
    expect(entry).toBeDefined();
    expect(BigInt(entry!.startNs) / TICK_NS).not.toBe(BigInt(report.freshStartTicks));
    expect(report.snapshot.reused).toEqual([]);
  });

  it('with no pass left to re-read, the stale entry is dropped and the snapshot is still coherent', () => {
    const report = reuseDuringSnapshot(1);
    expect(report.snapshot.coherent).toBe(true);
    expect(report.snapshot.attempts).toBe(1);
    expect(report.snapshot.processes.map((p) => p.pid)).not.toContain(report.oldPid);
    // The number is not in the snapshot, so neither is its hand-over; the
    // old task is listed as having exited in the window.
    expect(report.snapshot.reused).toEqual([]);
    expect(report.snapshot.exited.map((t) => t.tid)).toContain(report.oldPid);
  });

  it('a quiet snapshot is coherent at the first attempt, lists this process, and unloads its guard', async () => {
    const snap = await snapshot({ guard: 'bpf' });
    expect(snap.coherent).toBe(true);
    expect(snap.guard.kind).toBe('bpf');
    expect(snap.window.endNs).toBeGreaterThan(snap.window.startNs);
    const self = snap.processes.find((p) => p.pid === process.pid);
    expect(self?.cmdline[0]).toContain('node');
    expect(self?.threads.length).toBeGreaterThan(1);
    expect(await expectNothingLeft()).toEqual({ progs: [], links: [], maps: [] });
  });
});

describe('[kernel] the procfs walk', () => {
  it('a process that vanishes between readdir and read is skipped without error', async () => {
    const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
    await once(child, 'spawn');
    const pid = child.pid!;
    // As if readdir had listed it: it dies and is reaped before the read.
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    const entries = readProcessEntries('/proc', [pid, process.pid], { threads: true, pidfd: false });
    expect(entries.map((e) => e.pid)).toEqual([process.pid]);
  });

  it('--guard none takes the naive walk and never calls it coherent', async () => {
    const snap = await snapshot({ guard: 'none' });
    expect(snap.coherent).toBe(false);
    expect(snap.reason).toMatch(/no guard/);
    expect(snap.guard).toEqual({ kind: 'none' });
    expect(snap.processes.length).toBeGreaterThan(0);
  });
});

describe.runIf(isRoot)('[kernel] pidgen snapshot', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pidgen-snapshot-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes JSON when stdout is not a terminal, and it validates against schema/snapshot-2.json', () => {
    const result = runCli(['snapshot']);
    expect(result.status).toBe(0);
    const json = JSON.parse(result.stdout) as { schema: string; coherent: boolean; processes: { pid: number }[] };
    const valid = validate(json);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
    expect(json.schema).toBe('pidgen.snapshot/2');
    expect(json.coherent).toBe(true);
    expect(json.processes.some((p) => p.pid === 1)).toBe(true);
  });

  it('-o writes the file atomically: the file is complete and no temporary file is left beside it', () => {
    const target = join(dir, 'snap.json');
    const result = runCli(['snapshot', '-o', target, '--no-threads']);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('');
    expect(readdirSync(dir)).toEqual(['snap.json']);
    const json = JSON.parse(readFileSync(target, 'utf8')) as { processes: { threads: unknown[] }[] };
    expect(validate(json)).toBe(true);
    // --no-threads: processes only.
    expect(json.processes.every((p) => p.threads.length === 0)).toBe(true);
  });

  it('--format jsonl gives a header line, then one process per line', () => {
    const result = runCli(['snapshot', '--format', 'jsonl']);
    expect(result.status).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    const header = JSON.parse(lines[0]!) as { processCount: number; schema: string };
    expect(header.schema).toBe('pidgen.snapshot/2');
    expect(lines.length - 1).toBe(header.processCount);
    for (const line of lines.slice(1)) expect(JSON.parse(line)).toHaveProperty('pid');
  });

  it('--format table prints one row per process under a header that says whether it is coherent', () => {
    const result = runCli(['snapshot', '--format', 'table']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/coherent: yes/);
    expect(result.stdout).toMatch(/^\s+PID\s+PPID\s+UID\s+STATE\s+THR\s+START\s+COMM\s+CMDLINE$/m);
  });

  it('--require-coherent exits 3 for a snapshot that is not coherent, after still writing it', () => {
    const result = runCli(['snapshot', '--guard', 'none', '--require-coherent']);
    expect(result.status).toBe(3);
    expect(JSON.parse(result.stdout)).toMatchObject({ coherent: false });
    expect(result.stderr).toMatch(/not coherent: no guard/);
  });

  it('--guard bpf without privileges fails clearly with exit 1; --guard auto falls back to the cursor guard, with a notice', () => {
    const bpf = runCli(['snapshot', '--guard', 'bpf'], { asUser: 65534 });
    expect(bpf.status).toBe(1);
    expect(bpf.stderr).toMatch(/missing CAP_BPF and CAP_PERFMON/);
    expect(bpf.stderr).not.toMatch(/\n\s+at /);

    const auto = runCli(['snapshot'], { asUser: 65534 });
    expect(auto.status).toBe(0);
    expect(auto.stderr).toMatch(/notice: no BPF guard here .*cursor guard/);
    expect(auto.stderr.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(auto.stdout)).toMatchObject({ guard: { kind: 'cursor' } });
  });

  it.each([
    [['snapshot', '--format', 'xml'], /argument 'xml' is invalid/],
    [['snapshot', '--max-attempts', 'many'], /--max-attempts must be an integer/],
    [['snapshot', '--guard', 'magic'], /argument 'magic' is invalid/],
    [['snapshot', '--threads-only'], /unknown option/],
  ])('pidgen %j is a usage error: exit 2', (args, message) => {
    const result = runCli(args);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});
