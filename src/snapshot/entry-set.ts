/**
 * The entries of a walk, indexed by every PID number they claim, so the
 * algorithm can find each entry a handed-out number touches.
 */
import type { ProcessEntry } from '../model/snapshot.js';

/**
 * One entry's hold on a PID number: process `pid` lists `nr` as its own pid
 * (nr === pid) or as one of its threads.
 */
export interface Claim {
  nr: number;
  pid: number;
}

/**
 * The entries of a walk, and which entries claim each PID number. A walk is
 * not atomic, so two entries can claim one number (a stale process, and a
 * thread of another process that took the number later). Every claim is
 * kept, so every one of them is checked.
 *
 * The index is lean: a number claimed once (nearly all of them) maps
 * straight to its process's pid, and only a number claimed twice gets a
 * list. It is built on the first question about a number, not with the set:
 * in a quiet window nothing is handed out, nothing is asked, and the
 * snapshot never pays for it (about 1 ms at 5,000 tasks, an eighth of a
 * warm task-iterator snapshot).
 */
export class EntrySet {
  readonly processes = new Map<number, ProcessEntry>();
  /** nr → the pid of the process claiming it, or the pids of several; undefined until first asked. */
  #claims: Map<number, number | number[]> | undefined;
  /** No claim's task started after this (it is not lowered on removal). */
  #latestStart = -1n;

  constructor(entries: Iterable<ProcessEntry>) {
    for (const entry of entries) this.put(entry);
  }

  #index(): Map<number, number | number[]> {
    if (this.#claims) return this.#claims;
    this.#claims = new Map();
    for (const entry of this.processes.values()) this.#claimAll(entry);
    return this.#claims;
  }

  #claimAll(entry: ProcessEntry): void {
    this.#claim(entry.pid, entry.pid);
    for (const thread of entry.threads) this.#claim(thread.tid, entry.pid);
  }

  #claim(nr: number, pid: number): void {
    const claims = this.#claims!;
    const owners = claims.get(nr);
    if (owners === undefined) claims.set(nr, pid);
    else if (typeof owners === 'number') {
      if (owners !== pid) claims.set(nr, [owners, pid]);
    } else if (!owners.includes(pid)) owners.push(pid);
  }

  #release(nr: number, pid: number): void {
    const claims = this.#claims;
    if (!claims) return;
    const owners = claims.get(nr);
    if (owners === pid) claims.delete(nr);
    else if (Array.isArray(owners)) {
      const rest = owners.filter((p) => p !== pid);
      claims.set(nr, rest.length === 1 ? rest[0]! : rest);
    }
  }

  put(entry: ProcessEntry): void {
    this.remove(entry.pid);
    this.processes.set(entry.pid, entry);
    if (this.#claims) this.#claimAll(entry);
    let latest = this.#latestStart;
    if (entry.startNs > latest) latest = entry.startNs;
    for (const thread of entry.threads) if (thread.startNs > latest) latest = thread.startNs;
    this.#latestStart = latest;
  }

  remove(pid: number): void {
    const old = this.processes.get(pid);
    if (!old) return;
    this.processes.delete(pid);
    this.#release(pid, pid);
    for (const thread of old.threads) if (thread.tid !== pid) this.#release(thread.tid, pid);
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
    const owners = this.#index().get(nr);
    if (owners === undefined) return [];
    if (typeof owners === 'number') return [{ nr, pid: owners }];
    return owners.map((pid) => ({ nr, pid }));
  }

  /**
   * The claims on tasks that started at or after a time, skipping numbers
   * `skip` names: `exactSince` for entries with exact starts (the task
   * iterator), `tickSince` for /proc's tick-precision ones. A process's
   * own claim is its entry's start; a thread's is the thread's.
   */
  claimsStartedSince(exactSince: bigint, tickSince: bigint, skip: (nr: number) => boolean): Claim[] {
    const found: Claim[] = [];
    // Nearly always: every task started before the window.
    if (this.#latestStart < exactSince && this.#latestStart < tickSince) return found;
    for (const entry of this.processes.values()) {
      const since = entry.startExact ? exactSince : tickSince;
      if (entry.startNs >= since && !skip(entry.pid)) found.push({ nr: entry.pid, pid: entry.pid });
      for (const thread of entry.threads) {
        if (thread.tid !== entry.pid && thread.startNs >= since && !skip(thread.tid)) found.push({ nr: thread.tid, pid: entry.pid });
      }
    }
    return found;
  }

  numbers(): Iterable<number> {
    return this.#index().keys();
  }
}
