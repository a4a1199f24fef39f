// The bpf-iter and procfs sources agree on every field they share, on a
// quiet tree of known processes and threads in its own PID namespace.
// /proc gives start times in 10 ms ticks; the iterator gives nanoseconds, so
// start times must agree within one tick.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kernelAtLeast, kernelVersion } from '../../src/host/kernel.js';
import type { ProcessJson, SnapshotJson } from '../../src/output/json.js';
import { isRoot } from '../helpers/kernel.js';
import { slow } from '../helpers/slow.js';

const TICK = 10_000_000n;

function withinOneTick(exact: string, ticks: string): boolean {
  const e = BigInt(exact);
  const t = BigInt(ticks);
  return t <= e && e < t + TICK;
}

describe.runIf(isRoot)('[kernel] bpf-iter and procfs parity', () => {
  it('both sources list the same tasks with the same facts (start times within one tick)', () => {
    const probe = join(import.meta.dirname, '..', 'helpers', 'parity-run.mjs');
    const longArg = 'x'.repeat(6000); // longer than the iterator's argv copy: /proc fills in
    const tree = [
      'set -e',
      'sleep 1000 &',
      'sleep 1000 &',
      // A zombie: the subshell becomes sleep, which never reaps its child.
      '(sleep 0 & exec sleep 1000) &',
      // A hostile name: comm comes from the file name.
      'ln -sf /bin/sleep "/tmp/a) b (c" && "/tmp/a) b (c" 1000 &',
      // A long argv, kept by a waiting shell.
      `sh -c 'sleep 1000; :' parity-long ${longArg} &`,
      // Threads: node has several of its own.
      `${process.execPath} -e 'setTimeout(() => {}, 1e6)' &`,
      'sleep 0.5',
      `${process.execPath} ${probe}`,
    ].join('\n');
    const result = spawnSync('unshare', ['-pfm', '--mount-proc', 'bash', '-c', tree], { encoding: 'utf8', timeout: slow(60_000) });
    expect(result.status, result.stderr).toBe(0);
    const run = JSON.parse(result.stdout) as { self: number; iter: SnapshotJson; procfs: SnapshotJson };

    expect(run.iter.source).toBe('bpf-iter');
    expect(run.procfs.source).toBe('procfs');
    // argv comes from the sleepable iterator (bpf_copy_from_user_task, 5.18+), else from /proc.
    expect(run.iter.stats.cmdlineFrom).toBe(kernelAtLeast(kernelVersion(), 5, 18) ? 'bpf' : 'procfs');
    const known = (s: SnapshotJson) => s.processes.filter((p) => p.pid !== run.self);
    const iterProcs = new Map(known(run.iter).map((p) => [p.pid, p]));
    const procProcs = new Map(known(run.procfs).map((p) => [p.pid, p]));
    expect([...iterProcs.keys()].sort((a, b) => a - b)).toEqual([...procProcs.keys()].sort((a, b) => a - b));
    expect(iterProcs.size).toBeGreaterThanOrEqual(8);

    const states = new Set<string>();
    for (const [pid, fromProc] of procProcs) {
      const fromIter = iterProcs.get(pid)!;
      const shared: (keyof ProcessJson)[] = ['ppid', 'uid', 'comm', 'cmdline', 'state', 'kernelThread', 'pidfdIno'];
      for (const field of shared) expect(fromIter[field], `pid ${pid} ${field}`).toEqual(fromProc[field]);
      expect(fromIter.startExact).toBe(true);
      expect(withinOneTick(fromIter.startNs, fromProc.startNs), `pid ${pid} start ${fromIter.startNs} vs ${fromProc.startNs}`).toBe(true);
      expect(fromIter.threads.map((t) => t.tid)).toEqual(fromProc.threads.map((t) => t.tid));
      fromProc.threads.forEach((thread, i) => {
        const other = fromIter.threads[i]!;
        expect(other.comm, `tid ${thread.tid} comm`).toBe(thread.comm);
        expect(other.state, `tid ${thread.tid} state`).toBe(thread.state);
        expect(withinOneTick(other.startNs, thread.startNs), `tid ${thread.tid} start`).toBe(true);
      });
      states.add(fromProc.state);
    }
    // The tree really had what it was built for.
    expect(states).toContain('Z');
    expect([...procProcs.values()].some((p) => p.comm === 'a) b (c')).toBe(true);
    expect([...procProcs.values()].some((p) => p.cmdline.includes('x'.repeat(6000)))).toBe(true);
    expect([...procProcs.values()].some((p) => p.threads.length > 3)).toBe(true);
  });
});
