// The unprivileged cursor guard, as a non-root user, under real rollovers in
// a child PID namespace: it must never call a snapshot coherent whose window
// contains a rollover. Rollovers are recorded by a separate root poller of
// ns_last_pid, not by pidgen.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isRoot } from '../helpers/kernel.js';
import { withSmallPidMax } from '../helpers/pidns.js';
import { slow } from '../helpers/slow.js';

interface Run {
  rollovers: { afterNs: string; beforeNs: string }[];
  snapshots: { guard: string; coherent: boolean; attempts: number; reason: string | null; startNs: string; endNs: string; processes: number }[];
}

describe.runIf(isRoot)('[kernel] cursor guard (unprivileged)', () => {
  it('as nobody, snapshots succeed with guard cursor and none is called coherent across a rollover', (ctx) => withSmallPidMax(ctx, () => {
    const runner = join(import.meta.dirname, '..', 'helpers', 'cursor-rollover-run.mjs');
    const result = spawnSync(
      'unshare',
      ['-pfm', '--mount-proc', 'bash', '-c', `echo 400 > /proc/sys/kernel/pid_max && exec ${process.execPath} ${runner} 80 4000`],
      { encoding: 'utf8', timeout: slow(240_000) },
    );
    expect(result.status, result.stderr).toBe(0);
    const run = JSON.parse(result.stdout) as Run;

    expect(run.snapshots.length).toBeGreaterThanOrEqual(80);
    expect(run.snapshots.every((s) => s.guard === 'cursor')).toBe(true);
    // The runner goes on until it has seen 10 rollovers, or for a minute
    // (scaled by PIDGEN_TEST_SLOW, up to 15).
    expect(run.rollovers.length, 'rollovers the poller saw').toBeGreaterThan(3);

    // A rollover surely inside a window: between two poller reads that both
    // fall inside it.
    const across = run.snapshots.filter(
      (s) =>
        s.coherent &&
        run.rollovers.some((r) => BigInt(r.afterNs) >= BigInt(s.startNs) && BigInt(r.beforeNs) <= BigInt(s.endNs)),
    );
    expect(across).toEqual([]);

    // The test has teeth: rollovers did land in snapshots, and the guard saw them.
    const touched = run.snapshots.filter((s) => s.attempts > 1 || !s.coherent);
    expect(touched.length).toBeGreaterThan(0);
    const coherent = run.snapshots.filter((s) => s.coherent).length;
    console.log(
      `[kernel] cursor guard: ${run.rollovers.length} rollovers seen by the poller; ${coherent}/${run.snapshots.length} snapshots coherent, ` +
        `${touched.length} rescanned or not coherent; reasons: ${[...new Set(run.snapshots.map((s) => s.reason).filter(Boolean))].slice(0, 2).join(' | ')}`,
    );
  }), slow(250_000));
});
