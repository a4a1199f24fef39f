/**
 * Whose the pin directory is. bpffs is mounted mode 1777, so any user can
 * `mkdir /sys/fs/bpf/pidgen` before root pins there, and files pinned into a
 * directory others can write could be swapped for theirs. pidgen pins into,
 * and reads pins from, a directory owned by root and writable by root alone.
 */
import { readFileSync, statSync } from 'node:fs';
import { fsError } from '../errors.js';

export interface PinDirOwner {
  uid: number;
  /** The user name from /etc/passwd, if it has one. */
  user?: string;
  /** Permission bits, e.g. 0o755. */
  mode: number;
}

/** The name /etc/passwd gives uid, if any. */
function userName(uid: number, passwd = '/etc/passwd'): string | undefined {
  try {
    for (const line of readFileSync(passwd, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && Number(id) === uid && id !== '') return name;
    }
  } catch {
    // No passwd file: the uid alone names the owner.
  }
  return undefined;
}

/** Owner and mode of dir (which must exist). */
export function pinDirOwner(dir: string): PinDirOwner {
  let stat;
  try {
    stat = statSync(dir);
  } catch (error) {
    throw fsError('stat', dir, error);
  }
  const user = userName(stat.uid);
  return { uid: stat.uid, ...(user !== undefined ? { user } : {}), mode: stat.mode & 0o7777 };
}

/** "owned by nobody (uid 65534), mode 0755" */
export function describeOwner(owner: PinDirOwner): string {
  const who = owner.user !== undefined ? `${owner.user} (uid ${owner.uid})` : `uid ${owner.uid}`;
  return `owned by ${who}, mode ${owner.mode.toString(8).padStart(4, '0')}`;
}

/** Why pidgen must not trust a directory with this owner and mode, or undefined. */
export function untrustedBecause(owner: PinDirOwner): string | undefined {
  if (owner.uid !== 0) return 'not owned by root';
  if (owner.mode & 0o022) return `writable by ${owner.mode & 0o002 ? 'others' : 'its group'}`;
  return undefined;
}
