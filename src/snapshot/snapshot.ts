/**
 * pidgen's main job: every process and thread of a PID namespace, with an
 * honest answer to "is this coherent?" (DESIGN.md, "Coherent means").
 *
 * The walk is bracketed by the guard's allocation log. At each checkpoint the
 * log names exactly the PID numbers handed to a new task since the last one.
 * Only entries those numbers touch are repaired: re-read through a fresh
 * directory fd, or dropped on the last attempt. Each repair pass reads a few
 * PIDs, not the whole /proc, so it converges even when PIDs wrap faster than
 * a full scan completes; a full rescan happens only when the log lost
 * records.
 *
 * Why the log and not the generation alone: an unchanged generation means
 * no number was allocated twice in the window, but a number from an earlier
 * cycle whose task dies mid-walk can be handed out again without any wrap in
 * the window. The generation is still reported; the decision uses the log.
 */
import { readFileSync } from 'node:fs';
import { hostname, release } from 'node:os';
import { PidgenError, UsageError } from '../errors.js';
import { Guard, type AllocationEvent } from '../guard/guard.js';
import { kernelAtLeast, kernelVersion } from '../host/kernel.js';
import { ownPidNamespace, procPidNamespace } from '../host/pidns.js';
import { TaskIterator } from '../iter/task-iter.js';
import { listPids, readProcessEntries } from '../procfs/walker.js';
import { BpfWindowTracker, CursorWindowTracker, NoWindowTracker, type WindowTracker } from './window.js';
import { SNAPSHOT_SCHEMA, type ProcessEntry, type Snapshot, type SnapshotSource } from './types.js';

/** /proc start times are in USER_HZ ticks of 10 ms. */
const TICK_NS = 10_000_000n;

/**
 * How long the last checkpoint waits for the log record of a task that
 * started inside the window but has not been logged yet. task_newtask fires
 * a few instructions after the task becomes visible in /proc, so a walk can
 * see a task whose record is still on its way.
 */
const LATE_RECORD_WAIT_MS = 20;

export type GuardChoice = 'auto' | 'bpf' | 'cursor' | 'none';

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
  /**
   * @internal Test seam: runs after the first full walk, before the first
   * checkpoint, so a test can reuse a PID inside the window on purpose.
   */
  afterFirstWalk?: () => void | Promise<void>;
}

interface Resolved {
  tracker: WindowTracker;
  close(): void;
  /** Why a weaker guard than asked for is in use. */
  notice?: string;
}

function resolveGuard(choice: GuardChoice | Guard, procRoot: string, verbose: boolean): Resolved {
  if (choice instanceof Guard) return { tracker: new BpfWindowTracker(choice), close: () => {} };
  if (choice === 'none') return { tracker: new NoWindowTracker(), close: () => {} };
  if (choice === 'cursor') return { tracker: new CursorWindowTracker(), close: () => {} };
  try {
    const guard = Guard.open({ procRoot, verbose });
    return { tracker: new BpfWindowTracker(guard), close: () => guard.close() };
  } catch (error) {
    if (choice === 'bpf' || !(error instanceof PidgenError)) throw error;
    return {
      tracker: new CursorWindowTracker(),
      close: () => {},
      notice: `using the cursor guard: the BPF guard is not available (${error.message})`,
    };
  }
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

interface ResolvedSource {
  source: SnapshotSource;
  iterator?: TaskIterator;
  close(): void;
}

/**
 * The task iterator lists the namespace of the process that reads it, so
 * it can serve only a /proc of pidgen's own namespace; and it needs the
 * same privileges as the BPF guard.
 */
function resolveSource(choice: SnapshotOptions['source'], procRoot: string, verbose: boolean): ResolvedSource {
  if (choice instanceof TaskIterator) return { source: 'bpf-iter', iterator: choice, close: () => {} };
  if (choice === 'procfs') return { source: 'procfs', close: () => {} };
  const ownNamespace = procPidNamespace(procRoot) === ownPidNamespace();
  if (choice === 'bpf-iter' && !ownNamespace) {
    throw new UsageError(`source bpf-iter lists pidgen's own PID namespace only; ${procRoot} is another one (use procfs)`);
  }
  if (!ownNamespace) return { source: 'procfs', close: () => {} };
  try {
    const iterator = TaskIterator.open({ verbose });
    return { source: 'bpf-iter', iterator, close: () => iterator.close() };
  } catch (error) {
    if (choice === 'bpf-iter' || !(error instanceof PidgenError)) throw error;
    return { source: 'procfs', close: () => {} };
  }
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
  const resolved = resolveGuard(options.guard ?? 'auto', procRoot, verbose);
  let source: ResolvedSource | undefined;
  try {
    source = resolveSource(options.source ?? 'auto', procRoot, verbose);
    const result = await walkCoherently(resolved.tracker, {
      source: source.source,
      ...(source.iterator ? { iterator: source.iterator } : {}),
      ...(resolved.notice ? { notice: resolved.notice } : {}),
      maxAttempts,
      threads,
      procRoot,
      ...(options.afterFirstWalk ? { afterFirstWalk: options.afterFirstWalk } : {}),
    });
    return result;
  } finally {
    source?.close();
    resolved.tracker.finish();
    resolved.close();
  }
}

/**
 * One entry's hold on a PID number: process `pid` lists `nr` as its own pid
 * (nr === pid) or as one of its threads.
 */
interface Claim {
  nr: number;
  pid: number;
}

/**
 * The entries of a walk, and which entries claim each PID number. A walk is
 * not atomic, so two entries can claim one number (a stale process, and a
 * thread of another process that took the number later). Every claim is
 * kept, so every one of them is checked.
 */
class EntrySet {
  readonly processes = new Map<number, ProcessEntry>();
  /**
   * nr → (pid of the claiming process → start of the task the claim
   * describes; exact from the task iterator, else a tick from /proc).
   */
  #claims = new Map<number, Map<number, { startNs: bigint; exact: boolean }>>();

  constructor(entries: Iterable<ProcessEntry>) {
    for (const entry of entries) this.put(entry);
  }

  #claim(nr: number, pid: number, startNs: bigint, exact: boolean): void {
    let owners = this.#claims.get(nr);
    if (!owners) this.#claims.set(nr, (owners = new Map()));
    owners.set(pid, { startNs, exact });
  }

  #release(nr: number, pid: number): void {
    const owners = this.#claims.get(nr);
    owners?.delete(pid);
    if (owners?.size === 0) this.#claims.delete(nr);
  }

  put(entry: ProcessEntry): void {
    this.remove(entry.pid);
    this.processes.set(entry.pid, entry);
    for (const thread of entry.threads) this.#claim(thread.tid, entry.pid, thread.startNs, entry.startExact);
    // The process's own claim last: its leader thread (tid == pid) has the
    // same start, and the process entry is what the number names.
    this.#claim(entry.pid, entry.pid, entry.startNs, entry.startExact);
  }

  remove(pid: number): void {
    const old = this.processes.get(pid);
    if (!old) return;
    this.processes.delete(pid);
    this.#release(pid, pid);
    for (const thread of old.threads) this.#release(thread.tid, pid);
  }

  /** Drops one claim: the whole process for its own pid, else one thread. */
  drop(claim: Claim): void {
    if (claim.nr === claim.pid) {
      this.remove(claim.pid);
      return;
    }
    const owner = this.processes.get(claim.pid);
    if (!owner) return;
    owner.threads = owner.threads.filter((t) => t.tid !== claim.nr);
    this.#release(claim.nr, claim.pid);
  }

  claimsOf(nr: number): Claim[] {
    return [...(this.#claims.get(nr)?.keys() ?? [])].map((pid) => ({ nr, pid }));
  }

  /** Every claim with the start of the task it describes. */
  *claimsWithStart(): Iterable<Claim & { startNs: bigint; exact: boolean }> {
    for (const [nr, owners] of this.#claims) for (const [pid, start] of owners) yield { nr, pid, ...start };
  }

  numbers(): Iterable<number> {
    return this.#claims.keys();
  }
}

/** Same task? The pidfs inode says so exactly; otherwise the start tick,
 * which a successor cannot share if the first task started before the
 * window (a successor starts inside it). */
function sameTask(old: { startNs: bigint; pidfdIno?: bigint }, fresh: { startNs: bigint; pidfdIno?: bigint }, windowStartTick: bigint): boolean {
  if (old.pidfdIno !== undefined && fresh.pidfdIno !== undefined) return old.pidfdIno === fresh.pidfdIno;
  return old.startNs === fresh.startNs && old.startNs < windowStartTick;
}

/**
 * Re-reads the processes holding numbers that may have been handed out,
 * keeps what is provably the same task, and drops what is not (it started
 * inside the window or its predecessor died there; neither must be listed,
 * and without a log there is no exact time to list it under `reused`).
 * Returns how many processes were re-read.
 */
function verifyByRereading(
  entries: EntrySet,
  unverified: Set<number>,
  procRoot: string,
  readOptions: { threads: boolean; pidfd: boolean },
  windowStartNs: bigint,
): number {
  const windowStartTick = (windowStartNs / TICK_NS) * TICK_NS;
  const owners = new Map<number, ProcessEntry>();
  for (const nr of unverified) {
    for (const claim of entries.claimsOf(nr)) {
      const owner = entries.processes.get(claim.pid);
      if (owner) owners.set(owner.pid, owner);
    }
  }
  const fresh = new Map(readProcessEntries(procRoot, [...owners.keys()], readOptions).map((e) => [e.pid, e]));
  for (const [pid, old] of owners) {
    const now = fresh.get(pid);
    if (!now || (unverified.has(pid) && !sameTask(old, now, windowStartTick))) {
      entries.remove(pid);
      continue;
    }
    const oldThreads = new Map(old.threads.map((t) => [t.tid, t]));
    now.threads = now.threads.filter((t) => {
      if (!unverified.has(t.tid)) return true;
      const before = oldThreads.get(t.tid);
      return before !== undefined && sameTask(before, t, windowStartTick);
    });
    entries.put(now);
  }
  return owners.size;
}

interface WalkSettings {
  source: SnapshotSource;
  iterator?: TaskIterator;
  notice?: string;
  maxAttempts: number;
  threads: boolean;
  procRoot: string;
  afterFirstWalk?: () => void | Promise<void>;
}

async function walkCoherently(tracker: WindowTracker, settings: WalkSettings): Promise<Snapshot> {
  const { procRoot, maxAttempts } = settings;
  const readOptions = { threads: settings.threads, pidfd: kernelAtLeast(kernelVersion(), 6, 9) };
  const namespace = procPidNamespace(procRoot);
  const { iterator } = settings;
  // Repairs re-read single processes through /proc whatever the source: the
  // iterator cannot be pointed at a handful of PIDs cheaply.
  const fullWalk = () =>
    new EntrySet(
      iterator ? iterator.walk(procRoot, readOptions) : readProcessEntries(procRoot, listPids(procRoot), readOptions),
    );

  let startNs = tracker.start();
  let generationBefore = tracker.generation();
  // Tasks that started at or after these began after the log was armed, so
  // the log must hold their record: the window start for exact start times,
  // the next whole tick for /proc's tick-precision ones.
  let loggedSinceTick = (startNs / TICK_NS + 1n) * TICK_NS;
  let attempts = 1;
  let fullScans = 1;
  let repaired = 0;
  let entries = fullWalk();
  await settings.afterFirstWalk?.();
  /** Every number taken since the window started: the latest event for each. */
  let taken = new Map<number, AllocationEvent>();
  let coherent = false;
  let reason: string | undefined;
  let endNs = startNs;
  let waitingSince: number | undefined;

  for (;;) {
    const checkpoint = tracker.checkpoint();
    endNs = checkpoint.endNs;

    if (checkpoint.taken === null) {
      // The log cannot say which numbers were taken: only a new full walk,
      // in a new window, can be vouched for.
      if (!tracker.exact || attempts >= maxAttempts) {
        reason = tracker.exact ? `${checkpoint.reason}; gave up after ${attempts} attempts` : checkpoint.reason;
        break;
      }
      attempts++;
      fullScans++;
      startNs = tracker.start();
      generationBefore = tracker.generation();
      loggedSinceTick = (startNs / TICK_NS + 1n) * TICK_NS;
      taken = new Map();
      waitingSince = undefined;
      entries = fullWalk();
      continue;
    }

    for (const [nr, event] of checkpoint.taken) taken.set(nr, event);

    // Claims this checkpoint's numbers touch: unless the entry provably is
    // the new task (a process whose pidfs inode is the new one), it may
    // describe the old holder.
    const suspects: Claim[] = [];
    for (const [nr, event] of checkpoint.taken) {
      for (const claim of entries.claimsOf(nr)) {
        const owner = entries.processes.get(claim.pid);
        if (claim.nr === claim.pid && event.ino !== 0n && owner?.pidfdIno === event.ino) continue;
        suspects.push(claim);
      }
    }

    // Without a log: the numbers that may have been handed out. Their
    // entries are re-read and compared, not trusted.
    const unverified = new Set<number>();
    if (checkpoint.mayBeTaken) {
      for (const nr of entries.numbers()) if (checkpoint.mayBeTaken(nr)) unverified.add(nr);
    }
    if (unverified.size > 0) {
      if (attempts >= maxAttempts) {
        reason = `could not rule out reuse of ${unverified.size} PID(s) without an allocation log; gave up after ${attempts} attempts`;
        break;
      }
      attempts++;
      repaired += verifyByRereading(entries, unverified, procRoot, readOptions, startNs);
      continue;
    }

    // Claims on tasks that started after the log was armed but have no
    // record yet: their record is still on its way (LATE_RECORD_WAIT_MS).
    const unlogged: Claim[] = [];
    if (tracker.hasLog) {
      for (const claim of entries.claimsWithStart()) {
        const since = claim.exact ? startNs : loggedSinceTick;
        if (claim.startNs >= since && !taken.has(claim.nr)) unlogged.push({ nr: claim.nr, pid: claim.pid });
      }
    }
    if (suspects.length === 0 && unlogged.length > 0) {
      waitingSince ??= Date.now();
      if (Date.now() - waitingSince < LATE_RECORD_WAIT_MS) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      // Never logged: treat as suspects, so they are re-read or dropped.
      suspects.push(...unlogged);
    }

    if (suspects.length === 0) {
      coherent = true;
      break;
    }

    if (attempts >= maxAttempts) {
      // No passes left to re-read: drop what cannot be vouched for. Every
      // suspect's number was handed to a new task inside the window, so the
      // task its claim describes died in the window or started in it, and
      // neither must be in the snapshot. What stays is coherent.
      for (const claim of suspects) entries.drop(claim);
      repaired += suspects.length;
      coherent = true;
      break;
    }

    // Exact repair: re-read only the processes the suspects belong to, each
    // through a fresh directory fd; the next checkpoint vouches for them.
    attempts++;
    const owners = new Set(suspects.map((claim) => claim.pid));
    repaired += owners.size;
    const fresh = new Map(readProcessEntries(procRoot, [...owners], readOptions).map((e) => [e.pid, e]));
    for (const pid of owners) {
      const entry = fresh.get(pid);
      if (entry) entries.put(entry);
      else entries.remove(pid);
    }
    waitingSince = undefined;
  }

  const generationAfter = tracker.generation();
  if (!coherent && settings.notice) reason = `${reason ?? 'not coherent'} (${settings.notice})`;
  const processes = [...entries.processes.values()].sort((a, b) => a.pid - b.pid);

  // Exact start times, and the PIDs given to a new task inside the window.
  const reused: Snapshot['reused'] = [];
  for (const process of processes) {
    // Only when the event provably is this task (same pidfs inode): two
    // tasks can take one number within one 10 ms tick.
    const event = taken.get(process.pid);
    if (event?.exactStart && !event.thread && event.ino !== 0n && event.ino === process.pidfdIno) {
      process.startNs = event.startNs;
      process.startExact = true;
    }
  }
  if (tracker.hasLog) {
    for (const nr of entries.numbers()) {
      const event = taken.get(nr);
      if (event) reused.push({ pid: nr, atNs: event.startNs });
    }
    reused.sort((a, b) => a.pid - b.pid);
  }

  const tasks = processes.reduce((n, p) => n + Math.max(1, p.threads.length), 0);
  const result: Snapshot = {
    schema: SNAPSHOT_SCHEMA,
    host: hostFacts(),
    pidNamespace: { inum: namespace },
    clock: 'boottime',
    window: { startNs, endNs },
    source: settings.source,
    guard: {
      kind: tracker.kind,
      ...(tracker.attach ? { attach: tracker.attach } : {}),
      ...(generationBefore !== undefined ? { generationBefore } : {}),
      ...(generationAfter !== undefined ? { generationAfter } : {}),
      ...(tracker.pinned ? { pinned: true as const } : {}),
    },
    coherent,
    ...(coherent ? {} : { reason: reason ?? 'not coherent' }),
    attempts,
    reused,
    processes,
    stats: {
      tasks,
      durationNs: endNs - startNs,
      repaired,
      fullScans,
      ...(iterator ? { cmdlineFrom: iterator.cmdlineFrom } : {}),
    },
  };
  return result;
}
