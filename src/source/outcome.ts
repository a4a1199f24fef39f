/**
 * What a raw /proc read means, decided in one place (as psutil's
 * wrap_exceptions does for _pslinux.py). Reading /proc races with processes
 * dying, and that is normal:
 * - ENOENT (reaped after readdir) or ESRCH (dead, not yet reaped) on any file
 *   means the process is gone: it is left out, never reported half-read;
 * - any other errno (EACCES under hidepid=, EPERM) leaves the file
 *   unreadable: the entry is kept and says which field is missing;
 * - no errno at all: ok.
 */
import type { NativeProcessRead } from '../native/addon.js';

export type ReadOutcome = 'ok' | 'partial' | 'gone';

const ENOENT = 2;
const ESRCH = 3;

/** The errno of one file says the process is gone. */
export function isGone(errno: number | undefined): boolean {
  return errno === ENOENT || errno === ESRCH;
}

/** One process's read, as a whole. */
export function readOutcome(read: NativeProcessRead): ReadOutcome {
  const errnos = [read.openErr, read.statErr, read.statusErr, read.cmdlineErr, read.threadsErr];
  if (errnos.some(isGone)) return 'gone';
  if (errnos.some((e) => e !== undefined) || read.pidfdErr !== undefined) return 'partial';
  return 'ok';
}
