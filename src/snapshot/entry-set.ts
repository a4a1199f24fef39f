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
 */
export class EntrySet {
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
