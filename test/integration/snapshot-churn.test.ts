// Coherence under real PID reuse, judged by ground truth that owes nothing to
// pidgen: a C churner (test/helpers/churner.c) forks and reaps flat out in a
// child PID namespace whose pid_max is 400, so numbers 300-399 are reused
// hundreds of times a second, and logs every task's birth and reaping with
// CLOCK_BOOTTIME bounds. Inside the same namespace, churn-run.mjs takes
// snapshots with the BPF guard and with none; the checker
// (test/helpers/ground-truth.ts) holds each one against the log.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Snapshot } from '../../src/index.js';
import {
  boundStats,
  checkSnapshotDetailed,
  parseChurnLog,
  reviveSnapshot,
  type CheckResult,
  type ChurnTruth,
} from '../helpers/ground-truth.js';
import { isRoot } from '../helpers/kernel.js';

const root = join(import.meta.dirname, '..', '..');
/** Snapshots per guard (bpf and none each). */
const COUNT = 220;

interface Meta {
  churnerPid: number;
  churnerExit: { code: number | null; signal: string | null };
  ready: string;
  summary: string | null;
  churnStoppedEarly: boolean;
  ownTasksBefore: number[];
  ownTasksAfter: number[];
  snapshotMedianMs: { bpf: number; none: number };
}

interface Checked {
  index: number;
  snapshot: Snapshot;
  result: CheckResult;
}

interface Run {
  truth: ChurnTruth;
  meta: Meta;
  bpf: Checked[];
  none: Checked[];
  churn: { forks: number; seconds: number; forksPerS: number; wraps: number; wrapsPerS: number; threadsChurned: number };
}

function summaryField(summary: string, key: string): number {
  const m = new RegExp(`\\b${key}=([0-9.]+)`).exec(summary);
  return m ? Number(m[1]) : 0;
}

/** Runs churner + snapshots in a new PID namespace (pid_max 400) and checks every snapshot. */
function churnRun(dir: string, churner: string, churnerArgs: string[]): Run {
  const script = 'echo 400 > /proc/sys/kernel/pid_max && exec "$@"';
  const result = spawnSync(
    'unshare',
    [
      '-pfm',
      '--mount-proc',
      'bash',
      '-c',
      script,
      'churn',
      process.execPath,
      join(root, 'test', 'helpers', 'churn-run.mjs'),
      dir,
      String(COUNT),
      churner,
      ...churnerArgs,
    ],
    { cwd: root, encoding: 'utf8', timeout: 150_000 },
  );
  if (result.status !== 0) {
    throw new Error(`churn run failed (status ${result.status}, signal ${result.signal}):\n${result.stdout}\n${result.stderr}`);
  }
  // KEEP_CHURN=1 keeps the run's files (and its stderr) for a post-mortem.
  if (process.env.KEEP_CHURN) writeFileSync(join(dir, 'stderr.txt'), result.stderr);
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
  const truth = parseChurnLog(readFileSync(join(dir, 'churn.log'), 'utf8'));
  const lines = readFileSync(join(dir, 'snapshots.jsonl'), 'utf8').split('\n').filter((l) => l !== '');
  const bpf: Checked[] = [];
  const none: Checked[] = [];
  lines.forEach((line, index) => {
    const snapshot = reviveSnapshot(JSON.parse(line));
    const checked = { index, snapshot, result: checkSnapshotDetailed(snapshot, truth) };
    (snapshot.guard.kind === 'none' ? none : bpf).push(checked);
  });
  const summary = meta.summary ?? '';
  return {
    truth,
    meta,
    bpf,
    none,
    churn: {
      forks: summaryField(summary, 'forks'),
      seconds: summaryField(summary, 'seconds'),
      forksPerS: summaryField(summary, 'forks_per_s'),
      wraps: summaryField(summary, 'wraps'),
      wrapsPerS: summaryField(summary, 'wraps_per_s'),
      threadsChurned: summaryField(summary, 'threads_churned'),
    },
  };
}

const pct = (n: number, of: number): string => `${of === 0 ? 0 : ((100 * n) / of).toFixed(1)}%`;

const scenarios = [
  {
    name: 'processes come and go',
    // 40 long-lived processes (10 with 3 threads) hold 70 of the 100 recycled
    // numbers, so the other 30 change hands every few milliseconds.
    args: ['longlived=40', 'threads=3'],
  },
  {
    name: 'processes and threads come and go',
    // Plus 2 processes whose threads live 1-5 ms: a thread's TID is freed the
    // moment it exits and moves to another process or thread group.
    args: ['longlived=40', 'threads=3', 'threadchurn=2'],
  },
];

describe.runIf(isRoot)('[kernel] snapshots under PID churn, judged by the churner log', () => {
  let work: string;
  let churner: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'pidgen-churn-'));
    churner = join(work, 'churner');
    execFileSync('cc', ['-O2', '-pthread', '-o', churner, join(root, 'test', 'helpers', 'churner.c')], { stdio: 'inherit' });
  });

  afterAll(() => {
    if (work && !process.env.KEEP_CHURN) rmSync(work, { recursive: true, force: true });
  });

  describe.each(scenarios)('[kernel] $name', ({ name, args }) => {
    let run: Run;

    beforeAll(() => {
      const dir = mkdtempSync(join(work, 'run-'));
      run = churnRun(dir, churner, args);
      const { churn, bpf, none, meta } = run;
      const bounds = boundStats(run.truth);
      const repaired = bpf.filter((c) => c.snapshot.attempts > 1 || c.snapshot.reused.length > 0).length;
      const sum = (xs: Checked[], f: (c: Checked) => number) => xs.reduce((n, c) => n + f(c), 0);
      console.log(
        [
          `[kernel] churn (${name}): ${churn.forks} forks in ${churn.seconds}s = ${churn.forksPerS} forks/s, ` +
            `${churn.wraps} wraps = ${churn.wrapsPerS} wraps/s` +
            (churn.threadsChurned ? `, ${churn.threadsChurned} short-lived threads` : ''),
          `  bounds: fork median ${bounds.forkWidthNs.median} ns, p99 ${bounds.forkWidthNs.p99} ns; ` +
            `reap median ${bounds.reapWidthNs.median} ns, p99 ${bounds.reapWidthNs.p99} ns`,
          `  bpf: ${bpf.length} snapshots (median ${meta.snapshotMedianMs.bpf.toFixed(1)} ms), ` +
            `${bpf.filter((c) => c.snapshot.coherent).length} coherent, ${repaired} (${pct(repaired, bpf.length)}) needed repair ` +
            `(attempts > 1 or reused non-empty); attempts 1/2/3: ` +
            [1, 2, 3].map((a) => bpf.filter((c) => c.snapshot.attempts === a).length).join('/') +
            `; entries judged ${sum(bpf, (c) => c.result.judged)}, reuses excused ${sum(bpf, (c) => c.result.excused)}, ` +
            `tasks required ${sum(bpf, (c) => c.result.required)}, ambiguous P2/P3 ` +
            `${sum(bpf, (c) => c.result.ambiguous.P2)}/${sum(bpf, (c) => c.result.ambiguous.P3)}`,
          `  none: ${none.length} snapshots, ${none.filter((c) => c.result.violations.length > 0).length} with violations, ` +
            `${sum(none, (c) => c.result.violations.length)} violations (P1/P2/P3 ` +
            (['P1', 'P2', 'P3'] as const)
              .map((p) => sum(none, (c) => c.result.violations.filter((v) => v.property === p).length))
              .join('/') +
            ')',
        ].join('\n'),
      );
    }, 170_000);

    it('[kernel] the run itself is sound: real wraps, and no task in the namespace the log does not know', () => {
      expect(run.meta.churnerExit).toEqual({ code: 0, signal: null });
      expect(run.meta.churnStoppedEarly).toBe(false);
      // Our own tasks (node's threads) were all made before the churner
      // started: no unlogged task can carry a number the log knows.
      expect(run.meta.ownTasksAfter).toEqual(run.meta.ownTasksBefore);
      expect(run.churn.wraps).toBeGreaterThan(0);
      expect(run.bpf).toHaveLength(COUNT);
      expect(run.none).toHaveLength(COUNT);
      expect(run.bpf.every((c) => c.snapshot.guard.kind === 'bpf')).toBe(true);
      // Both sources were judged, half each.
      expect(run.bpf.filter((c) => c.snapshot.source === 'procfs').length).toBe(COUNT / 2);
      expect(run.bpf.filter((c) => c.snapshot.source === 'bpf-iter').length).toBe(COUNT / 2);
      // The checker judged real entries, not an empty set.
      expect(run.bpf.reduce((n, c) => n + c.result.judged, 0)).toBeGreaterThan(COUNT * 10);
      expect(run.bpf.reduce((n, c) => n + c.result.required, 0)).toBeGreaterThan(COUNT * 10);
    });

    it('[kernel] (a) every snapshot marked coherent has zero violations', () => {
      const bad = run.bpf
        .filter((c) => c.snapshot.coherent && c.result.violations.length > 0)
        .map(
          (c) =>
            `snapshot #${c.index} window [${c.snapshot.window.startNs}, ${c.snapshot.window.endNs}] attempts ${c.snapshot.attempts} ` +
            `reused ${c.snapshot.reused.length}: ` +
            c.result.violations
              .slice(0, 3)
              .map((v) => `${v.property} ${v.message}`)
              .join(' | '),
        );
      if (bad.length > 0) console.log(`[kernel] ${bad.length} coherent snapshots with violations:\n${bad.slice(0, 5).join('\n')}`);
      expect(bad.slice(0, 5)).toEqual([]);
    });

    it('[kernel] (b) the same check finds violations in unguarded snapshots', () => {
      expect(run.none.every((c) => !c.snapshot.coherent)).toBe(true);
      const violations = run.none.reduce((n, c) => n + c.result.violations.length, 0);
      console.log(`[kernel] (${name}) unguarded snapshots: ${violations} violations`);
      expect(violations).toBeGreaterThan(0);
    });

    it('[kernel] (c) at least 95% of BPF-guarded snapshots are coherent within 3 attempts', () => {
      const coherent = run.bpf.filter((c) => c.snapshot.coherent && c.snapshot.attempts <= 3).length;
      expect(coherent / run.bpf.length).toBeGreaterThanOrEqual(0.95);
    });
  });
});
