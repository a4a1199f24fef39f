/**
 * What a guard contributes to a snapshot: the window's clock, the generation
 * before and after, and at each checkpoint the exact set of PID numbers that
 * were handed to a new task since the previous one (or "unknown").
 */
import { Guard, type AllocationEvent } from '../guard/guard.js';
import { nativeAddon } from '../native/addon.js';
import type { GuardKind } from './types.js';

export interface Checkpoint {
  /** CLOCK_BOOTTIME when the checkpoint was taken: the window ends here if this is the last. */
  endNs: bigint;
  /**
   * Numbers taken since the previous checkpoint, the latest event for each;
   * null when the tracker cannot know them (lost log records, or no log).
   */
  taken: Map<number, AllocationEvent> | null;
  /** Why taken is null. */
  reason?: string;
}

export interface WindowTracker {
  readonly kind: GuardKind;
  readonly attach?: string;
  /** Whether checkpoints can ever name the taken numbers exactly. */
  readonly exact: boolean;
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
  readonly attach: string;
  #guard: Guard;
  #health: { nsMapFull: bigint; readErrors: bigint; logDrops: bigint } | undefined;
  #logging = false;

  constructor(guard: Guard) {
    this.#guard = guard;
    this.attach = guard.attach;
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
    const taken = new Map<number, AllocationEvent>();
    const namespace = this.#guard.namespace;
    for (const event of events) if (event.inum === namespace) taken.set(event.nr, event);
    return { endNs, taken };
  }

  finish(): void {
    if (this.#logging) this.#guard.endAllocationLog();
    this.#logging = false;
  }
}

/** No guard: the walk is taken as it comes and never called coherent. */
export class NoWindowTracker implements WindowTracker {
  readonly kind = 'none' as const;
  readonly exact = false;
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
