/**
 * The seam between the coherence algorithm and where facts come from. A
 * source lists every process of the scanning namespace and re-reads a few of
 * them on demand; the algorithm decides which entries to trust. Today's two
 * sources, /proc (procfs.ts) and the BPF task iterator (bpf-iter.ts), live
 * beside this file; a third (a recorded trace, netlink) drops in here
 * without touching the algorithm.
 */
import type { ProcessEntry, SnapshotSource } from '../model/snapshot.js';

export interface ReadSettings {
  /** The /proc to read (procfs, and the iterator's top-ups). */
  procRoot: string;
  threads: boolean;
  /** Read the pidfs inode (kernels >= 6.9 only; earlier ones share one inode). */
  pidfd: boolean;
}

export interface Source {
  readonly kind: SnapshotSource;
  /** bpf-iter: where argv comes from (the iterator, or /proc on kernels < 5.18). */
  readonly cmdlineFrom?: 'bpf' | 'procfs';
  /** Entries list their threads, so their numbers are every number the source saw held. */
  readonly listsThreads: boolean;
  /** Every process of the namespace, each entry read from one task. */
  walk(): ProcessEntry[];
  /**
   * Fresh reads of these processes, each from one task. A pid missing from
   * the result is gone (or its number now names a thread, not a process).
   */
  reread(pids: readonly number[]): Map<number, ProcessEntry>;
}
