/**
 * pidgen's main job: every process and thread of a PID namespace, with an
 * honest answer to "is this coherent?". This file is the public entry:
 * options, the choice of guard and source (choose.ts), and the result's
 * shape; the algorithm itself is coherent.ts.
 */
import { readFileSync } from 'node:fs';
import { hostname, release } from 'node:os';
import { UsageError } from '../errors.js';
import type { Guard } from '../guard/guard.js';
import { kernelAtLeast, kernelVersion } from '../host/kernel.js';
import { procPidNamespace } from '../host/pidns.js';
import { TaskIterator } from '../iter/task-iter.js';
import { SNAPSHOT_SCHEMA, type Snapshot, type SnapshotSource } from '../model/snapshot.js';
import { BpfIterSource } from '../source/bpf-iter.js';
import { ProcfsSource } from '../source/procfs.js';
import type { ReadSettings, Source } from '../source/source.js';
import { chooseGuard, chooseSourceAsync, type ChosenGuard, type ChosenSource, type GuardChoice } from './choose.js';
import { timedAsync } from '../profile.js';
import { walkCoherently } from './coherent.js';
import { snapshotHooks } from './hooks.js';

export type { GuardChoice } from './choose.js';

export interface SnapshotOptions {
  /**
   * `'auto'` (default): the BPF guard (pinned, or loaded now) if it can be
   * had, else the unprivileged `'cursor'` guard. `'bpf'`: the BPF guard or an
   * error. `'cursor'`: ns_last_pid and the fork count, no privileges needed.
   * `'none'`: the naive walk, never coherent. Or an open {@link Guard} to
   * reuse across snapshots (it is not closed).
   */
  guard?: GuardChoice | Guard;
  /**
   * Where the facts come from. `'bpf-iter'`: one BPF task-iterator pass
   * (privileged; only for the namespace pidgen runs in). `'procfs'`: the
   * /proc walk. `'auto'` (default): bpf-iter where it loads, else procfs. Or
   * an open {@link TaskIterator} to reuse across snapshots (not closed).
   */
  source?: 'auto' | SnapshotSource | TaskIterator;
  /** Include threads (default true). */
  threads?: boolean;
  /** Passes (the walk plus repairs) before giving up; default 3. */
  maxAttempts?: number;
  /** The /proc to walk; default `/proc`. */
  procRoot?: string;
  /** libbpf messages on stderr when loading a guard. */
  verbose?: boolean;
}

function validate(options: SnapshotOptions): Required<Pick<SnapshotOptions, 'maxAttempts' | 'threads' | 'procRoot'>> {
  const maxAttempts = options.maxAttempts ?? 3;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 100) {
    throw new UsageError(`maxAttempts must be an integer from 1 to 100, got ${String(options.maxAttempts)}`);
  }
  const source = options.source;
  if (source !== undefined && !(source instanceof TaskIterator) && !['auto', 'procfs', 'bpf-iter'].includes(source)) {
    throw new UsageError(`source must be auto, procfs or bpf-iter, got '${String(source)}'`);
  }
  return { maxAttempts, threads: options.threads ?? true, procRoot: options.procRoot ?? '/proc' };
}

function hostFacts(): Snapshot['host'] {
  let bootId = '';
  try {
    bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // Not fatal: a container may hide it.
  }
  return { hostname: hostname(), kernel: release(), bootId };
}

/** Takes a snapshot of every process and thread the /proc lists. */
export async function snapshot(options: SnapshotOptions = {}): Promise<Snapshot> {
  const { maxAttempts, threads, procRoot } = validate(options);
  const verbose = options.verbose ?? false;
  // The iterator loads on a worker thread while the guard loads here.
  const openStart = process.hrtime.bigint();
  const pendingSource = chooseSourceAsync(options.source ?? 'auto', procRoot, verbose);
  let guard: ChosenGuard;
  try {
    guard = chooseGuard(options.guard ?? 'auto', procRoot, verbose);
  } catch (error) {
    (await pendingSource.catch(() => undefined))?.close();
    throw error;
  }
  let chosen: ChosenSource | undefined;
  try {
    chosen = await timedAsync('open', () => pendingSource, openStart);
    const settings: ReadSettings = { procRoot, threads, pidfd: kernelAtLeast(kernelVersion(), 6, 9) };
    const source: Source = chosen.iterator ? new BpfIterSource(chosen.iterator, settings) : new ProcfsSource(settings);
    const namespace = procPidNamespace(procRoot);
    const hooks = snapshotHooks();
    const outcome = await walkCoherently(guard.tracker, source, { maxAttempts }, hooks.afterFirstWalk ? { afterFirstWalk: hooks.afterFirstWalk } : {});
    const tracker = guard.tracker;
    let reason = outcome.reason;
    if (!outcome.coherent && guard.notice) reason = `${reason ?? 'not coherent'} (${guard.notice})`;
    const tasks = outcome.processes.reduce((n, p) => n + Math.max(1, p.threads.length), 0);
    return {
      schema: SNAPSHOT_SCHEMA,
      host: hostFacts(),
      pidNamespace: { inum: namespace },
      clock: 'boottime',
      window: outcome.window,
      source: source.kind,
      guard: {
        kind: tracker.kind,
        ...(tracker.attach ? { attach: tracker.attach } : {}),
        ...(outcome.generationBefore !== undefined ? { generationBefore: outcome.generationBefore } : {}),
        ...(outcome.generationAfter !== undefined ? { generationAfter: outcome.generationAfter } : {}),
        ...(tracker.pinned ? { pinned: true as const } : {}),
      },
      coherent: outcome.coherent,
      ...(outcome.coherent ? {} : { reason: reason ?? 'not coherent' }),
      attempts: outcome.attempts,
      reused: outcome.reused,
      exited: outcome.exited,
      processes: outcome.processes,
      stats: {
        tasks,
        durationNs: outcome.window.endNs - outcome.window.startNs,
        repaired: outcome.repaired,
        fullScans: outcome.fullScans,
        ...(source.cmdlineFrom ? { cmdlineFrom: source.cmdlineFrom } : {}),
      },
    };
  } finally {
    chosen?.close();
    guard.tracker.finish();
    guard.close();
  }
}
