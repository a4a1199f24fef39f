/**
 * Which guard and which source a snapshot uses, decided in one place:
 * `snapshot()` and `pidgen doctor` both call these, so doctor reports what a
 * snapshot would really get.
 */
import { PidgenError, UsageError } from '../errors.js';
import { Guard } from '../guard/guard.js';
import { ownPidNamespace, procPidNamespace } from '../host/pidns.js';
import { TaskIterator } from '../iter/task-iter.js';
import type { SnapshotSource } from '../model/snapshot.js';
import { BpfWindowTracker, CursorWindowTracker, NoWindowTracker, type WindowTracker } from './window.js';

export type GuardChoice = 'auto' | 'bpf' | 'cursor' | 'none';
export type SourceChoice = 'auto' | SnapshotSource;

export interface ChosenGuard {
  tracker: WindowTracker;
  /** The guard this choice opened (closed by {@link ChosenGuard.close}); absent for cursor and none. */
  guard?: Guard;
  close(): void;
  /** Why a weaker guard than asked for is in use. */
  notice?: string;
}

/** `auto`: the BPF guard (pinned, or loaded now) if it can be had, else the cursor guard. */
export function chooseGuard(choice: GuardChoice | Guard, procRoot: string, verbose: boolean): ChosenGuard {
  if (choice instanceof Guard) return { tracker: new BpfWindowTracker(choice), close: () => {} };
  if (choice === 'none') return { tracker: new NoWindowTracker(), close: () => {} };
  if (choice === 'cursor') return { tracker: new CursorWindowTracker(), close: () => {} };
  try {
    const guard = Guard.open({ procRoot, verbose });
    return { tracker: new BpfWindowTracker(guard), guard, close: () => guard.close() };
  } catch (error) {
    if (choice === 'bpf' || !(error instanceof PidgenError)) throw error;
    return {
      tracker: new CursorWindowTracker(),
      close: () => {},
      notice: `using the cursor guard: the BPF guard is not available (${error.message})`,
    };
  }
}

export interface ChosenSource {
  kind: SnapshotSource;
  iterator?: TaskIterator;
  close(): void;
  /** Why procfs is used where bpf-iter was possible in principle. */
  reason?: string;
}

/**
 * The task iterator lists the namespace of the process that reads it, so
 * it can serve only a /proc of pidgen's own namespace; and it needs the
 * same privileges as the BPF guard. `auto`: bpf-iter where it loads, else
 * procfs.
 */
export function chooseSource(choice: SourceChoice | TaskIterator, procRoot: string, verbose: boolean): ChosenSource {
  const decided = decideSource(choice, procRoot);
  if (decided) return decided;
  try {
    return withIterator(TaskIterator.open({ verbose }));
  } catch (error) {
    return fellBack(choice as SourceChoice, error);
  }
}

/**
 * {@link chooseSource}, loading the iterator on a worker thread: start it,
 * choose the guard, then await it (snapshot() does, so the two loads
 * overlap).
 */
export async function chooseSourceAsync(choice: SourceChoice | TaskIterator, procRoot: string, verbose: boolean): Promise<ChosenSource> {
  const decided = decideSource(choice, procRoot);
  if (decided) return decided;
  try {
    return withIterator(await TaskIterator.openAsync({ verbose }));
  } catch (error) {
    return fellBack(choice as SourceChoice, error);
  }
}

/** Every choice that loads nothing; undefined when the iterator must be loaded. */
function decideSource(choice: SourceChoice | TaskIterator, procRoot: string): ChosenSource | undefined {
  if (choice instanceof TaskIterator) return { kind: 'bpf-iter', iterator: choice, close: () => {} };
  if (choice === 'procfs') return { kind: 'procfs', close: () => {} };
  const ownNamespace = procPidNamespace(procRoot) === ownPidNamespace();
  if (choice === 'bpf-iter' && !ownNamespace) {
    throw new UsageError(`source bpf-iter lists pidgen's own PID namespace only; ${procRoot} is another one (use procfs)`);
  }
  if (!ownNamespace) return { kind: 'procfs', close: () => {}, reason: `${procRoot} is not pidgen's own PID namespace` };
  return undefined;
}

function withIterator(iterator: TaskIterator): ChosenSource {
  return { kind: 'bpf-iter', iterator, close: () => iterator.close() };
}

/** `auto`: procfs, saying why, when the iterator does not load; `bpf-iter`: the error. */
function fellBack(choice: SourceChoice, error: unknown): ChosenSource {
  if (choice === 'bpf-iter' || !(error instanceof PidgenError)) throw error;
  return { kind: 'procfs', close: () => {}, reason: error.message };
}
