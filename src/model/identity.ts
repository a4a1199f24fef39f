/**
 * When two observations of one PID number are of the same task. Shared by
 * the sources (is this /proc top-up of the task the iterator saw?) and the
 * algorithm (is the re-read entry still the task the walk saw?).
 */
import { floorToTick } from './layout.js';

export interface TaskIdentity {
  /** CLOCK_BOOTTIME start: exact (iterator, log) or floored to a tick (/proc). */
  startNs: bigint;
  /** pidfs inode (6.9+): never reused, so it decides alone when both have it. */
  pidfdIno?: bigint | undefined;
}

/**
 * Same task? The pidfs inode says so exactly. Otherwise the start time at
 * /proc's tick precision, which two tasks can share: callers that must rule
 * out a successor add their own condition (see {@link decidedByInode}).
 */
export function sameTask(a: TaskIdentity, b: TaskIdentity): boolean {
  if (decidedByInode(a, b)) return a.pidfdIno === b.pidfdIno;
  return floorToTick(a.startNs) === floorToTick(b.startNs);
}

/** Both carry a pidfs inode, so {@link sameTask} is exact. */
export function decidedByInode(a: TaskIdentity, b: TaskIdentity): boolean {
  return a.pidfdIno !== undefined && b.pidfdIno !== undefined;
}
