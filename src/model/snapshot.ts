/**
 * The snapshot model: the records every part of pidgen reads and writes.
 * Sources produce entries, the coherence algorithm decides over them, and
 * outputs render them; all three import this file and nothing imports
 * upwards from it. As the library returns it and as `pidgen.snapshot/2`
 * JSON carries it: in memory, nanosecond times and 64-bit counters are
 * bigint; in JSON they are decimal strings (see output/json.ts).
 */

export const SNAPSHOT_SCHEMA = 'pidgen.snapshot/2';
/** The previous version, which `fromJSON` still reads. */
export const SNAPSHOT_SCHEMA_V1 = 'pidgen.snapshot/1';

export type SnapshotSource = 'procfs' | 'bpf-iter';
export type GuardKind = 'bpf' | 'cursor' | 'none';

/** Per-process fields that could not be read (EACCES, e.g. a hidepid= mount). */
export type UnreadableField = 'stat' | 'status' | 'cmdline' | 'threads' | 'uid' | 'pidfdIno';

export interface ThreadEntry {
  tid: number;
  comm: string;
  /** One-letter state from stat: R, S, D, Z, T, t, X, I, ... */
  state: string;
  /** CLOCK_BOOTTIME nanoseconds the thread started. */
  startNs: bigint;
}

export interface ProcessEntry {
  pid: number;
  ppid: number;
  /** Real uid (first field of `Uid:` in status), as Perfetto reports it. */
  uid: number | null;
  comm: string;
  /** argv; empty for kernel threads and zombies. Non-UTF-8 bytes become U+FFFD. */
  cmdline: string[];
  state: string;
  startNs: bigint;
  /** true: startNs is the kernel's exact start_boottime; false: /proc's clock ticks converted. */
  startExact: boolean;
  /** pidfs inode of the process (never reused), on kernels with pidfs (6.9+). */
  pidfdIno?: bigint;
  kernelThread: boolean;
  threads: ThreadEntry[];
  /** Fields that could not be read; absent when everything was read. */
  unreadable?: UnreadableField[];
  /** Text fields where bytes that are not UTF-8 were replaced; absent when none. */
  lossy?: ('comm' | 'cmdline')[];
}

/** One hand-over: a PID number given to a new task inside the window. */
export interface ReusedPid {
  pid: number;
  /**
   * CLOCK_BOOTTIME nanoseconds at which the new task took the PID: its
   * start_boottime (task_newtask fires a few microseconds later).
   */
  atNs: bigint;
  /**
   * On the latest hand-over of a number: the pid of the process entry that
   * is the new task (the process itself, or the process the new thread
   * belongs to), when it is in the snapshot. The algorithm knows it from the
   * log; outputs read it instead of working it out again.
   */
  holder?: number;
  /**
   * The task that created the new one, as the log saw it (the forking task:
   * the parent of a process, a thread of the same process for a thread),
   * numbered in the scanning namespace. Absent when it has no number there
   * (a fork into a child namespace, as for that namespace's init).
   */
  creator?: { pid: number; tid: number };
}

/**
 * A task whose exit the snapshot logged and that is not in the snapshot. Its
 * exit is before the window end, usually inside the window; it can precede
 * the window start a little (a zombie the walk saw, whose exit ran just
 * before the window opened and was logged as it did).
 */
export interface ExitedTask {
  /** Its thread group, as the scanning namespace sees it. */
  pid: number;
  tid: number;
  /** Its name when it exited. */
  comm: string;
  /** Exact start_boottime. */
  startNs: bigint;
  /** CLOCK_BOOTTIME when it exited (sched_process_exit). */
  exitNs: bigint;
}

export interface Snapshot {
  schema: typeof SNAPSHOT_SCHEMA;
  host: { hostname: string; kernel: string; bootId: string };
  pidNamespace: { inum: number };
  clock: 'boottime';
  window: { startNs: bigint; endNs: bigint };
  source: SnapshotSource;
  guard: {
    kind: GuardKind;
    attach?: string;
    generationBefore?: bigint;
    generationAfter?: bigint;
    /** The bpf guard was the counter `pidgen pin` left in bpffs. */
    pinned?: true;
  };
  coherent: boolean;
  /** Why the snapshot is not coherent; present only when coherent is false. */
  reason?: string;
  attempts: number;
  /** Every hand-over inside the window of every PID in the snapshot, in time order. */
  reused: ReusedPid[];
  /**
   * Tasks that exited inside the window and are not among `processes`: they
   * came and went inside it, or died in it and were left out. In exit order.
   * Empty without the bpf guard (nothing logs exits then).
   */
  exited: ExitedTask[];
  processes: ProcessEntry[];
  stats: {
    tasks: number;
    durationNs: bigint;
    /** PIDs re-read by exact repair, over all attempts. */
    repaired?: number;
    /** Full walks done (1 unless a repair had to fall back to a rescan). */
    fullScans?: number;
    /** bpf-iter source: argv came from the iterator itself, or from /proc (kernel < 5.18). */
    cmdlineFrom?: 'bpf' | 'procfs';
  };
}
