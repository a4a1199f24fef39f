/**
 * What a guard contributes to a snapshot: the window's clock, the generation
 * before and after, and at each checkpoint the exact set of PID numbers that
 * were handed to a new task since the previous one (or "unknown").
 */
import { readFileSync } from 'node:fs';
import { fsError } from '../errors.js';
import { Guard, type AllocationEvent, type ExitEvent, type LogEvent } from '../guard/guard.js';
import { readNsLastPid, readPidMax } from '../host/pidns.js';
import { nativeAddon } from '../native/addon.js';
import { snapshotHooks } from './hooks.js';
import type { GuardKind } from '../model/snapshot.js';

export interface Checkpoint {
  /** CLOCK_BOOTTIME when the checkpoint was taken: the window ends here if this is the last. */
  endNs: bigint;
  /**
   * Numbers certainly handed to a new task since the previous checkpoint,
   * each with its events in log order (the bpf guard's log); null when the
   * tracker cannot say (lost log records, no log, or a possible wrap).
   */
  taken: Map<number, AllocationEvent[]> | null;
  /**
   * Tasks of the namespace that exited since the previous checkpoint, by
   * number, in log order (the bpf guard; empty for the others). Only
   * meaningful when `taken` is not null.
   */
  exits?: Map<number, ExitEvent[]>;
  /**
   * Without a log: whether a number may have been handed out since the
   * previous checkpoint (the cursor guard's swept range). Entries it names
   * are re-read and compared; the others are safe.
   */
  mayBeTaken?: (nr: number) => boolean;
  /** Why neither is known. */
  reason?: string;
}

export interface WindowTracker {
  readonly kind: GuardKind;
  readonly attach?: string;
  /** The guard is a pinned counter (bpf only). */
  readonly pinned?: boolean;
  /** Whether checkpoints can ever vouch for a window (false: never coherent). */
  readonly exact: boolean;
  /** Checkpoints carry an allocation log, so every new task has a record. */
  readonly hasLog: boolean;
  /** Starts the window; returns its CLOCK_BOOTTIME start. */
  start(): bigint;
  /** The scanning namespace's generation now, if this guard has one. */
  generation(): bigint | undefined;
  /**
   * `held`: every PID number the window's reads saw held (undefined when
   * they did not list threads, so could not see them all). A tracker
   * without a log needs them to bound how far its cursor can have gone.
   */
  checkpoint(held?: ReadonlySet<number>): Checkpoint;
  /** Stops logging; the tracker cannot be used afterwards. */
  finish(): void;
}

export function boottimeNs(): bigint {
  return nativeAddon().boottimeNs();
}

/** The BPF guard: generation counter plus the allocation log. */
export class BpfWindowTracker implements WindowTracker {
  readonly kind = 'bpf' as const;
  readonly exact = true;
  readonly hasLog = true;
  readonly attach: string;
  readonly pinned: boolean;
  #guard: Guard;
  #health: { nsMapFull: bigint; readErrors: bigint; logDrops: bigint } | undefined;
  #logging = false;
  /** Records from after the last checkpoint's endNs, held for the next one. */
  #early: LogEvent[] = [];

  constructor(guard: Guard) {
    this.#guard = guard;
    this.attach = guard.attach;
    this.pinned = guard.pinned;
  }

  start(): bigint {
    if (!this.#logging) {
      this.#guard.beginAllocationLog();
      this.#logging = true;
    } else {
      this.#guard.drainAllocationLog();
    }
    this.#early = [];
    this.#health = this.#guard.health();
    return boottimeNs();
  }

  generation(): bigint {
    return this.#guard.generation();
  }

  checkpoint(): Checkpoint {
    const endNs = boottimeNs();
    // The drain comes after endNs, so it can hold records of tasks that
    // started or exited after it. They belong to the next checkpoint: a
    // task started after endNs did not take its number inside this window,
    // and one that exited after it was alive for all of it.
    const { upToEnd: events, after } = splitAtWindowEnd([...this.#early, ...this.#guard.drainAllocationLog()], endNs);
    this.#early = after;
    const health = this.#guard.health();
    const before = this.#health;
    this.#health = health;
    // Any record the programs could not write leaves a hole in the log: the
    // set of taken numbers is then unknown, not "whatever we saw".
    if (before && health.logDrops !== before.logDrops) {
      return { endNs, taken: null, reason: `allocation log overflowed (${health.logDrops - before.logDrops} records lost)` };
    }
    if (before && (health.readErrors !== before.readErrors || health.nsMapFull !== before.nsMapFull)) {
      return { endNs, taken: null, reason: 'the BPF side missed allocations (kernel read error or namespace map full)' };
    }
    const taken = new Map<number, AllocationEvent[]>();
    const exits = new Map<number, ExitEvent[]>();
    const namespace = this.#guard.namespace;
    const withheld = snapshotHooks().withholdRecord;
    for (const event of events) {
      if (event.inum !== namespace) continue;
      if (withheld?.(event)) continue;
      if (event.kind === 'exit') push(exits, event.nr, event as ExitEvent);
      else push(taken, event.nr, event as AllocationEvent);
    }
    return { endNs, taken, exits };
  }

  finish(): void {
    if (this.#logging) this.#guard.endAllocationLog();
    this.#logging = false;
  }
}

/** When a record's news happened: a new task's start, or an exit. */
function eventNs(event: LogEvent): bigint {
  return event.kind === 'exit' ? event.atNs : event.startNs;
}

/** The records of a drain up to a checkpoint's endNs, and those from after it (kept for the next). */
export function splitAtWindowEnd<T extends LogEvent>(drained: readonly T[], endNs: bigint): { upToEnd: T[]; after: T[] } {
  const upToEnd: T[] = [];
  const after: T[] = [];
  for (const event of drained) (eventNs(event) <= endNs ? upToEnd : after).push(event);
  return { upToEnd, after };
}

function push<T>(map: Map<number, T[]>, nr: number, event: T): void {
  const forNumber = map.get(nr);
  if (forNumber) forNumber.push(event);
  else map.set(nr, [event]);
}

/** No guard: the walk is taken as it comes and never called coherent. */
export class NoWindowTracker implements WindowTracker {
  readonly kind = 'none' as const;
  readonly exact = false;
  readonly hasLog = false;
  constructor(private readonly why = 'no guard (--guard none): PID reuse during the walk cannot be detected') {}
  start(): bigint {
    return boottimeNs();
  }
  generation(): undefined {
    return undefined;
  }
  checkpoint(): Checkpoint {
    return { endNs: boottimeNs(), taken: null, reason: this.why };
  }
  finish(): void {}
}

/** The first group of `pattern` in the file at `path`, as a count. */
function readCount(path: string, pattern: RegExp, what: string): bigint {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw fsError('read', path, error);
  }
  const m = pattern.exec(text);
  if (!m?.[1]) throw fsError('parse', path, { code: 'EINVAL', message: `no ${what}` });
  return BigInt(m[1]);
}

/** The `processes` line of /proc/stat: forks since boot, in every namespace. */
export function readForkCount(statPath = '/proc/stat'): bigint {
  return readCount(statPath, /^processes (\d+)$/m, 'processes line');
}

/** The tasks of the whole host right now: the total of /proc/loadavg's "running/total". */
export function readTaskCount(loadavgPath = '/proc/loadavg'): bigint {
  return readCount(loadavgPath, /^\S+ \S+ \S+ \d+\/(\d+) /, 'running/total field');
}

export interface Cursor {
  /** ns_last_pid. */
  lastPid: number;
  /** Forks since boot, host-wide (/proc/stat). */
  forks: bigint;
  /** Tasks now, host-wide (/proc/loadavg). */
  tasks: bigint;
}

/** After a wrap the allocator starts again at RESERVED_PIDS (kernel/pid.c). */
const RESERVED_PIDS = 300;

/**
 * The unprivileged guard: the namespace's allocation cursor (ns_last_pid),
 * pid_max, the host-wide fork count and task count, before and after.
 *
 * Without a wrap, the numbers handed out since the last checkpoint are in
 * (last_before, last_after]: entries holding them are re-read and compared.
 * A number above the cursor left from before the last wrap can be handed out
 * again without any new wrap, so the swept range matters, not just "did it
 * wrap". With a wrap, anything may have been reused, and only a new walk
 * helps.
 *
 * Ruling out a wrap. A cursor that went down wrapped. One that went all the
 * way round and came back at or above where it was passed every number of
 * [RESERVED_PIDS, pid_max), and each number it passed was either handed out
 * (at most `forks`) or skipped because a task held it then. A held number
 * is one of the numbers the window's reads saw (`held`), or its task died
 * before a read could see it: at most the host's exits in between (`forks`
 * minus the change in the task count), or its task was born in the window
 * after the walk had passed its number and before this interval (at most
 * the forks since the window started: from the second checkpoint on, such
 * a task is alive, unseen and older than the interval). Without thread
 * listings the reads do not see every number, and the host's task count at
 * the start of the interval bounds them instead. So a full round needs forks + skipped >= pid_max -
 * RESERVED_PIDS; below that, it did not happen. The counts are read on
 * both sides of the cursor, so each errs high.
 *
 * Limits: it counts forks and exits of every namespace (conservative: more
 * rescans on a busy host), it has no exact times (a reused PID is dropped,
 * not listed), and ns_last_pid is per reader, so it guards only the
 * namespace pidgen runs in.
 */
/**
 * Why the cursor may have gone round between two reads (the rule above), or
 * undefined when it cannot have. `held`: the numbers the window's reads saw
 * held. `windowForks`: the host's fork count when the window started (the
 * tasks born in the window before this interval, which no read may have
 * seen, are among the forks since).
 */
export function wrapPossible(
  before: Cursor,
  after: Cursor,
  pidMax: number,
  held: ReadonlySet<number> | undefined,
  windowForks: bigint = before.forks,
): string | undefined {
  const forks = after.forks - before.forks;
  const delta = before.tasks + forks - after.tasks;
  const exits = delta > 0n ? delta : 0n;
  const bornEarlier = before.forks > windowForks ? before.forks - windowForks : 0n;
  // Numbers in use when the cursor passed them, by tasks older than the
  // interval: every one was alive at its start, so at most the host's task
  // count then; or, when the reads saw every number held, those, the tasks
  // that died before a read could see them, and the tasks born in the
  // window before this interval (a read may have passed their number
  // before they took it).
  let skipped = before.tasks;
  let heldInRing = 0n;
  if (held) {
    for (const nr of held) if (nr >= RESERVED_PIDS && nr < pidMax) heldInRing++;
    if (heldInRing + exits + bornEarlier < skipped) skipped = heldInRing + exits + bornEarlier;
  }
  const ring = BigInt(Math.max(pidMax - RESERVED_PIDS, 0));
  if (after.lastPid >= before.lastPid && forks + skipped < ring) return undefined;
  return (
    `PID numbers may have wrapped (ns_last_pid ${before.lastPid} -> ${after.lastPid}, ${forks} forks and ${exits} exits on the host, ` +
    `${held ? `${heldInRing} numbers held${bornEarlier > 0n ? `, ${bornEarlier} forks earlier in the window` : ''}` : `${before.tasks} tasks on the host`}, pid_max ${pidMax})`
  );
}

export class CursorWindowTracker implements WindowTracker {
  readonly kind = 'cursor' as const;
  readonly exact = true;
  readonly hasLog = false;
  #cursor: Cursor | undefined;
  /** The host's fork count when the window started (wrapPossible). */
  #windowForks = 0n;

  /**
   * The cursor, bracketed by the counts: `start` as a baseline (counts read
   * before the cursor), `end` to close an interval (counts read after it).
   * Each errs toward more forks and more exits.
   */
  #read(): { start: Cursor; end: Cursor } {
    const forks = readForkCount();
    const tasks = readTaskCount();
    const lastPid = readNsLastPid();
    const tasksAfter = readTaskCount();
    return { start: { lastPid, forks, tasks }, end: { lastPid, forks: readForkCount(), tasks: tasksAfter } };
  }

  start(): bigint {
    this.#cursor = this.#read().start;
    this.#windowForks = this.#cursor.forks;
    return boottimeNs();
  }

  generation(): undefined {
    return undefined;
  }

  checkpoint(held?: ReadonlySet<number>): Checkpoint {
    const endNs = boottimeNs();
    const now = this.#read();
    const before = this.#cursor ?? now.start;
    const after = now.end;
    this.#cursor = now.start;
    const pidMax = readPidMax();
    const wrapped = wrapPossible(before, after, pidMax, held, this.#windowForks);
    if (wrapped) return { endNs, taken: null, reason: wrapped };
    const low = before.lastPid;
    const high = after.lastPid;
    return { endNs, taken: new Map(), mayBeTaken: (nr) => nr > low && nr <= high };
  }

  finish(): void {}
}
