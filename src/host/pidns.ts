/** The PID namespace a /proc belongs to, and its allocation cursor. */
import { readFileSync, statSync } from 'node:fs';
import { fsError } from '../errors.js';

/**
 * Inode number of the PID namespace whose tasks `procRoot` lists, as in
 * `readlink /proc/self/ns/pid`. `self` names the reader in that procfs; if the
 * reader has no PID there (a procfs of another namespace mounted elsewhere),
 * its PID 1 is that namespace's init and names it just as well.
 */
export function procPidNamespace(procRoot = '/proc'): number {
  for (const entry of ['self', '1']) {
    try {
      return statSync(`${procRoot}/${entry}/ns/pid`).ino;
    } catch (error) {
      if (entry === '1') throw fsError('stat', `${procRoot}/${entry}/ns/pid`, error);
    }
  }
  /* c8 ignore next */
  throw new Error('unreachable');
}

/**
 * Inode number of the initial (root) PID namespace: a fixed constant of the
 * kernel (PROC_PID_INIT_INO, include/linux/proc_ns.h), the same on every boot.
 */
export const INIT_PID_NAMESPACE = 0xeffffffc;

/** PID namespace of this process itself; /proc/sys/kernel/* values refer to it. */
export function ownPidNamespace(): number {
  return procPidNamespace('/proc');
}

function readNumber(path: string): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw fsError('read', path, error);
  }
  const value = Number(text.trim());
  if (!Number.isSafeInteger(value)) throw fsError('parse', path, { code: 'EINVAL', message: `not a number: ${text.trim()}` });
  return value;
}

/**
 * The last PID number allocated in this process's PID namespace (the
 * allocator's cursor minus one). sysctls are per reader, not per mount.
 */
export function readNsLastPid(): number {
  return readNumber('/proc/sys/kernel/ns_last_pid');
}

/** pid_max as this process's namespace sees it (per namespace since 6.14). */
export function readPidMax(): number {
  return readNumber('/proc/sys/kernel/pid_max');
}
