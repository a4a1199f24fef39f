/**
 * The TS side's copy of the facts fixed by bpf/pidgen.h and by the kernel's
 * ABI, in one place: record sizes and flags of what the BPF programs write,
 * attach points, pin names, USER_HZ and PF_KTHREAD. The C side reads them
 * from bpf/pidgen.h itself; change both together (and bump
 * PIDGEN_LAYOUT_VERSION when a record changes shape).
 */

/** Attach points the native loader knows (AttachKind), in try order. */
export type AttachKind = 'fexit' | 'tp_btf' | 'raw_tp';

/**
 * Each attach kind: the kernel hook as libbpf and bpftool name it
 * (PIDGEN_ATTACH_*_POINT) and its id in pidgen_meta.attach (PIDGEN_ATTACH_*).
 */
export const ATTACH: Readonly<Record<AttachKind, { point: string; id: number }>> = {
  fexit: { point: 'fexit/alloc_pid', id: 1 },
  tp_btf: { point: 'tp_btf/task_newtask', id: 2 },
  raw_tp: { point: 'raw_tp/task_newtask', id: 3 },
};

/** The attach point whose pidgen_meta.attach id is `id`, if any. */
export function attachPointOfId(id: number): string | undefined {
  return Object.values(ATTACH).find((a) => a.id === id)?.point;
}

/** Where `pidgen pin` keeps the counter (and the iterator) in bpffs. */
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/pidgen';

/**
 * Names under a pin directory (PIDGEN_PIN_*). Links come first: `unpin`
 * removes them in this order, so programs detach before their maps go.
 */
export const PIN_NAMES = {
  link: 'link',
  exitLink: 'exit_link',
  iter: 'iter',
  ns: 'ns',
  log: 'log',
  bss: 'bss',
  iterBss: 'iter_bss',
  meta: 'meta',
} as const;

/** pidgen_meta.iter */
export const PINNED_ITER = 0x1;
export const PINNED_ITER_SLEEPABLE = 0x2;

/** pidgen_ns_counter.flags */
export const NS_FIRST_SEEN_LATE = 0x1;
export const NS_SEEDED = 0x2;

/**
 * struct pidgen_log_event: u64 start_ns, u64 at_ns, u64 ino, u32 inum, u32 nr,
 * u32 tgid, u32 flags, u32 creator_tid, u32 creator_tgid, char comm[16].
 */
export const LOG_EVENT = {
  size: 64,
  startNs: 0,
  atNs: 8,
  ino: 16,
  inum: 24,
  nr: 28,
  tgid: 32,
  flags: 36,
  creatorTid: 40,
  creatorTgid: 44,
  comm: 48,
  commEnd: 64,
} as const;
export const EVENT_THREAD = 0x1;
export const EVENT_EXACT_START = 0x2;
export const EVENT_EXIT = 0x4;

/**
 * struct pidgen_task_record: u64 start_ns, u64 ino, u32 tgid, tid, ppid, uid,
 * flags, state, exit_state, cmdline_len, record_flags, reserved, char comm[16].
 */
export const TASK_RECORD = {
  size: 72,
  startNs: 0,
  ino: 8,
  tgid: 16,
  tid: 20,
  ppid: 24,
  uid: 28,
  flags: 32,
  state: 36,
  exitState: 40,
  cmdlineLen: 44,
  recordFlags: 48,
  comm: 56,
  commEnd: 72,
} as const;
/** pidgen_task_record.record_flags */
export const TASK_CMDLINE = 0x1;
export const TASK_CMDLINE_TRUNCATED = 0x2;
export const TASK_CMDLINE_FAILED = 0x4;

/** Iterator settings (PIDGEN_ITER_*). */
export const ITER_THREADS = 0x1;
export const ITER_CMDLINE = 0x2;

/** task->flags: a kernel thread (include/linux/sched.h). Bit 21, inside int32. */
export const PF_KTHREAD = 0x0020_0000;

/** /proc's start times are in USER_HZ ticks; USER_HZ is 100 on every Linux ABI pidgen runs on. */
export const USER_HZ = 100;
export const TICK_NS = 1_000_000_000n / BigInt(USER_HZ);

/** The start of the /proc tick that holds `ns`. */
export function floorToTick(ns: bigint): bigint {
  return (ns / TICK_NS) * TICK_NS;
}
