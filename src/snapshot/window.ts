/**
 * What a guard contributes to a snapshot: the window's clock, the generation
 * before and after, and at each checkpoint the exact set of PID numbers that
 * were handed to a new task since the previous one (or "unknown").
 */
import { readFileSync } from 'node:fs';
import { fsError } from '../errors.js';
import { Guard, type AllocationEvent, type ExitEvent } from '../guard/guard.js';
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
  checkpoint(): Checkpoint;
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
    this.#health = this.#guard.health();
    return boottimeNs();
  }

  generation(): bigint {
    return this.#guard.generation();
  }

  checkpoint(): Checkpoint {
    const endNs = boottimeNs();
    const events = this.#guard.drainAllocationLog();
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

/** The `processes` line of /proc/stat: forks since boot, in every namespace. */
export function readForkCount(statPath = '/proc/stat'): bigint {
  let text: string;
  try {
    text = readFileSync(statPath, 'utf8');
  } catch (error) {
    throw fsError('read', statPath, error);
  }
  const m = /^processes (\d+)$/m.exec(text);
  if (!m?.[1]) throw fsError('parse', statPath, { code: 'EINVAL', message: 'no processes line' });
  return BigInt(m[1]);
}

interface Cursor {
  lastPid: number;
  forks: bigint;
}

/**
 * The unprivileged guard: the namespace's allocation cursor (ns_last_pid),
 * pid_max, and the host-wide fork count, before and after.
 *
 * A wrap is impossible when `last_before + forks_delta < pid_max` and the
 * cursor did not go down. That alone does not rule out reuse: a number
 * above the cursor, left from before the last wrap, may belong to a task
 * that dies mid-walk and is then handed out again without a new wrap. So
 * when no wrap was possible, the numbers the cursor swept, (last_before,
 * last_after], are what may have been taken: entries holding them are
 * re-read and compared. When a wrap was possible, anything may have been
 * reused, and only a new walk helps.
 *
 * Limits: it sees forks of every namespace (conservative: more rescans on a
 * busy host), it has no exact times (a reused PID is dropped, not listed),
 * and ns_last_pid is per reader, so it guards only the namespace pidgen runs
 * in.
 */
export class CursorWindowTracker implements WindowTracker {
  readonly kind = 'cursor' as const;
  readonly exact = true;
  readonly hasLog = false;
  #cursor: Cursor | undefined;

  #read(): Cursor {
    return { lastPid: readNsLastPid(), forks: readForkCount() };
  }

  start(): bigint {
    this.#cursor = this.#read();
    return boottimeNs();
  }

  generation(): undefined {
    return undefined;
  }

  checkpoint(): Checkpoint {
    const endNs = boottimeNs();
    const before = this.#cursor ?? this.#read();
    const after = this.#read();
    this.#cursor = after;
    const pidMax = readPidMax();
    const forks = after.forks - before.forks;
    if (after.lastPid < before.lastPid || BigInt(before.lastPid) + forks >= BigInt(pidMax)) {
      return {
        endNs,
        taken: null,
        reason: `PID numbers may have wrapped (ns_last_pid ${before.lastPid} -> ${after.lastPid}, ${forks} forks, pid_max ${pidMax})`,
      };
    }
    const low = before.lastPid;
    const high = after.lastPid;
    return { endNs, taken: new Map(), mayBeTaken: (nr) => nr > low && nr <= high };
  }

  finish(): void {}
}
