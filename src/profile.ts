/**
 * `pidgen bench`'s breakdown of where a snapshot's time goes: while a
 * profile is on, each phase below adds the nanoseconds it took. Off (as
 * always outside the bench), a phase costs one check.
 */

/**
 * `kernel pass`: the task iterator's read (with /proc listed beside it);
 * `read`: procfs's native batch reads; `parse`: bytes into entries;
 * `top-ups`: /proc reads for what the pass could not give; `guard`: opening
 * the window and its checkpoints (the log's drains); `index`: the entry
 * index and the checks made on it; `open`: choosing (and loading) the guard
 * and the source.
 */
export type SnapshotPhase = 'open' | 'kernel pass' | 'read' | 'parse' | 'top-ups' | 'guard' | 'index';

let profile: Map<SnapshotPhase, number> | undefined;
/** Time spent in phases nested inside the running one, which it must not count again. */
let nestedNs = 0;

/** Starts adding up phases into a fresh map, and returns it. */
export function startProfile(): Map<SnapshotPhase, number> {
  profile = new Map();
  nestedNs = 0;
  return profile;
}

export function stopProfile(): void {
  profile = undefined;
}

/**
 * Runs `f`, adding its time to `phase` when a profile is on. A phase inside
 * another (a re-read's `read` inside `index`) counts for itself only, so
 * the phases add up to the call.
 */
export function timed<T>(phase: SnapshotPhase, f: () => T): T {
  const into = profile;
  if (!into) return f();
  const outer = nestedNs;
  nestedNs = 0;
  const start = process.hrtime.bigint();
  try {
    return f();
  } finally {
    const took = Number(process.hrtime.bigint() - start);
    into.set(phase, (into.get(phase) ?? 0) + took - nestedNs);
    nestedNs = outer + took;
  }
}

/** `timed` for a promise: the time until it settles, from `start` (default: now). */
export async function timedAsync<T>(phase: SnapshotPhase, f: () => Promise<T>, start = process.hrtime.bigint()): Promise<T> {
  const into = profile;
  if (!into) return f();
  try {
    return await f();
  } finally {
    into.set(phase, (into.get(phase) ?? 0) + Number(process.hrtime.bigint() - start));
  }
}
