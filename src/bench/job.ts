/**
 * What the bench asks of a run inside its child PID namespace, and what that
 * run answers. The outer process (command.ts) sends a job as one JSON
 * argument; the run (inside.ts, PID 1 of the namespace) prints one JSON reply
 * line on stdout and exits, which ends every task in the namespace.
 */
import type { SnapshotSource } from '../model/snapshot.js';
import type { BenchHelpers } from './helpers.js';
import type { ForkNoGuardResult, ForkPathResult, ScanResult } from './results.js';

/**
 * snapshot() calls a library row's process makes after its first (cold) one
 * before timing, and calls timed (their median is the row). A library user
 * who holds a TaskIterator takes snapshots over and over, so the bpf-iter row
 * is timed once V8 has optimized the parse (a few calls were not enough: the
 * median of calls 4-6 was 16 ms at 5,000 tasks, of calls 11-19 about 12 ms).
 * A procfs call at 20,000 tasks takes most of a second, so it gets fewer.
 */
export const LIBRARY_CALLS: Record<SnapshotSource, { warmUp: number; timed: number }> = {
  'bpf-iter': { warmUp: 10, timed: 9 },
  procfs: { warmUp: 2, timed: 3 },
};

/** Create a population of processes × threadsPerProcess tasks and time every tool on it. */
export interface ScanJob {
  mode: 'scan';
  /** The task count asked for (the chart's x); the population is processes × threadsPerProcess. */
  tasks: number;
  processes: number;
  threadsPerProcess: number;
  /** Measured runs after the warm-up run. */
  runs: number;
  helpers: BenchHelpers;
  /** Scratch directory for tools' outputs (shared with the outer process). */
  workDir: string;
  /** Node, the built CLI and the snapshot child script. */
  node: string;
  cli: string;
  snapshotChild: string;
  /** pidgen sources to try; one not available yet is skipped with its reason. */
  sources: SnapshotSource[];
  /** Read pidfs inodes (kernels >= 6.9), as pidgen's procfs source does. */
  pidfd: boolean;
  python: string;
}

/** Time fork+exit+wait with no guard, an idle guard and a logging guard. */
export interface ForkJob {
  mode: 'fork';
  forks: number;
  runs: number;
  helpers: BenchHelpers;
}

export type Job = ScanJob | ForkJob;

export interface ScanReply {
  mode: 'scan';
  result: ScanResult;
  notes: string[];
  /** A pidgen row failed (not merely unavailable): the bench exits 1. */
  pidgenFailed: boolean;
}

/** `result` with all three rows; `noGuardOnly` where no BPF guard loads (Linux < 5.12). */
export type ForkReply = { mode: 'fork'; notes: string[] } & ({ result: ForkPathResult } | { noGuardOnly: ForkNoGuardResult });

export type Reply = ScanReply | ForkReply;
