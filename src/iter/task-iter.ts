/**
 * The `bpf-iter` source: every task of the scanning namespace from one BPF
 * task-iterator pass (bpf/task_iter.bpf.c), parsed from one Buffer with no
 * native call per record.
 *
 * Where the iterator cannot give a fact, /proc fills in, for the few
 * processes concerned, through the same batch reader as the procfs source:
 * - argv, when the sleepable program does not load (kernel < 5.18), or for a
 *   process whose argv is longer than the copy buffer, could not be copied,
 *   or was rewritten in place (no trailing NUL: /proc has rules for that);
 * - the name of a kernel thread: task->comm holds 15 bytes, while /proc
 *   shows a kthread's full name and a workqueue worker's current work
 *   (proc_task_name(): "kworker/0:1-events");
 * - a process /proc lists that the iterator did not visit. This happens: on
 *   some hosts the kernel's iterator skips a task (PID 1 of the VM this was
 *   built on), and a snapshot must list every task alive for its window.
 * Each top-up is checked to be the same task (pidfs inode, else start tick).
 */
import { existsSync } from 'node:fs';
import { PidgenError } from '../errors.js';
import { DEFAULT_PIN_DIR } from '../guard/guard.js';
import { nativeAddon, type NativeProcessRead, type NativeTaskIterator } from '../native/addon.js';
import { decodeComm } from '../procfs/decode.js';
import { parseCmdline, parseStat, ticksToNs } from '../procfs/parse.js';
import { listPids, readProcessEntries } from '../procfs/walker.js';
import type { ProcessEntry, ThreadEntry } from '../snapshot/types.js';

// struct pidgen_task_record, bpf/pidgen.h
const RECORD_SIZE = 72;
const RECORD_CMDLINE = 0x1;
const RECORD_CMDLINE_TRUNCATED = 0x2;
const RECORD_CMDLINE_FAILED = 0x4;
const ITER_THREADS = 0x1;
const ITER_CMDLINE = 0x2;
const PF_KTHREAD = 0x00200000;
const TICK_NS = 10_000_000n;

/** One task as the iterator reports it. */
export interface TaskRecord {
  tgid: number;
  tid: number;
  ppid: number;
  uid: number;
  flags: number;
  state: number;
  exitState: number;
  startNs: bigint;
  /** pidfs inode of the task's struct pid (6.9+), else 0n. */
  ino: bigint;
  comm: string;
  commLossy: boolean;
  /** argv bytes, when the sleepable program copied them. */
  cmdline?: Buffer;
  /** Why argv is missing: not copied, too long, or the copy failed. */
  cmdlineMissing?: 'not-copied' | 'truncated' | 'failed';
}

/**
 * The state letter /proc shows, from task->__state and exit_state, as
 * fs/proc/array.c does: task_state_index() then "RSDTtXZPI"[index].
 */
export function stateLetter(state: number, exitState: number): string {
  // include/linux/sched.h, __task_state_index()
  const TASK_REPORT = 0x7f;
  const TASK_IDLE = 0x402; // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
  const TASK_RTLOCK_WAIT = 0x1000;
  const TASK_FROZEN = 0x8000;
  let reported = (state | exitState) & TASK_REPORT;
  if ((state & TASK_IDLE) === TASK_IDLE) reported = 0x80; // TASK_REPORT_IDLE: I
  if (state & TASK_RTLOCK_WAIT || state & TASK_FROZEN) reported = 0x2; // shown as D
  // fls(): index of the highest set bit, 1-based; 0 for none.
  const index = reported === 0 ? 0 : 32 - Math.clz32(reported);
  return 'RSDTtXZPI'[index] ?? '?';
}

/** Parses one pass of packed records (see struct pidgen_task_record). */
export function parseTaskRecords(buffer: Uint8Array): TaskRecord[] {
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const records: TaskRecord[] = [];
  let offset = 0;
  while (offset + RECORD_SIZE <= buffer.byteLength) {
    const cmdlineLength = view.getUint32(offset + 44, true);
    const recordFlags = view.getUint32(offset + 48, true);
    const comm = decodeComm(bytes.subarray(offset + 56, offset + 72));
    const record: TaskRecord = {
      startNs: view.getBigUint64(offset, true),
      ino: view.getBigUint64(offset + 8, true),
      tgid: view.getUint32(offset + 16, true),
      tid: view.getUint32(offset + 20, true),
      ppid: view.getUint32(offset + 24, true),
      uid: view.getUint32(offset + 28, true),
      flags: view.getUint32(offset + 32, true),
      state: view.getUint32(offset + 36, true),
      exitState: view.getUint32(offset + 40, true),
      comm: comm.text,
      commLossy: comm.lossy,
    };
    offset += RECORD_SIZE;
    if (recordFlags & RECORD_CMDLINE) {
      if (offset + cmdlineLength > buffer.byteLength) {
        throw new PidgenError(`parse task iterator output: record for tid ${record.tid} runs past the end`, {
          code: 'EBADMSG',
          op: 'parse task iterator output',
        });
      }
      record.cmdline = bytes.subarray(offset, offset + cmdlineLength);
      offset += (cmdlineLength + 7) & ~7;
    } else if (recordFlags & RECORD_CMDLINE_TRUNCATED) {
      record.cmdlineMissing = 'truncated';
    } else if (recordFlags & RECORD_CMDLINE_FAILED) {
      record.cmdlineMissing = 'failed';
    } else {
      record.cmdlineMissing = 'not-copied';
    }
    records.push(record);
  }
  return records;
}

/** argv as /proc would show it, or undefined when /proc must be asked. */
function cmdlineOf(record: TaskRecord): { argv: string[]; lossy: boolean } | undefined {
  // Kernel threads and zombies have no mm: an empty cmdline, as in /proc.
  if (record.flags & PF_KTHREAD || record.exitState !== 0) return { argv: [], lossy: false };
  if (!record.cmdline) return undefined;
  if (record.cmdline.length === 0) return { argv: [], lossy: false };
  // No trailing NUL: the process rewrote its argv area, and /proc then
  // applies its own rules (get_mm_cmdline may read on into the env area).
  if (record.cmdline[record.cmdline.length - 1] !== 0) return undefined;
  return parseCmdline(record.cmdline);
}

function toThread(record: TaskRecord): ThreadEntry {
  return {
    tid: record.tid,
    comm: record.comm,
    state: stateLetter(record.state, record.exitState),
    startNs: record.startNs,
  };
}

/**
 * Groups records into process entries. Returns the entries and the pids
 * whose argv must come from /proc.
 */
export function recordsToEntries(records: readonly TaskRecord[], threads: boolean): { entries: Map<number, ProcessEntry>; needArgv: number[] } {
  const entries = new Map<number, ProcessEntry>();
  const needArgv: number[] = [];
  for (const record of records) {
    if (record.tid !== record.tgid) continue;
    const argv = cmdlineOf(record);
    if (!argv) needArgv.push(record.tgid);
    const lossy: ('comm' | 'cmdline')[] = [];
    if (record.commLossy) lossy.push('comm');
    if (argv?.lossy) lossy.push('cmdline');
    const entry: ProcessEntry = {
      pid: record.tgid,
      ppid: record.ppid,
      uid: record.uid,
      comm: record.comm,
      cmdline: argv?.argv ?? [],
      state: stateLetter(record.state, record.exitState),
      startNs: record.startNs,
      startExact: true,
      kernelThread: (record.flags & PF_KTHREAD) !== 0,
      threads: [],
    };
    if (record.ino !== 0n) entry.pidfdIno = record.ino;
    if (lossy.length) entry.lossy = lossy;
    entries.set(entry.pid, entry);
  }
  if (threads) {
    for (const record of records) {
      // A thread whose leader the iterator did not list (it exited between
      // the two) has no process entry to go in: it is left out, as /proc
      // would not list it either once the leader is gone.
      entries.get(record.tgid)?.threads.push(toThread(record));
    }
    for (const entry of entries.values()) entry.threads.sort((a, b) => a.tid - b.tid);
  }
  return { entries, needArgv };
}

/** The /proc reads that top up what a pass could not give: stat (to check
 * it is the same task), and argv when asked. */
function readTopUp(procRoot: string, pids: number[], options: { cmdline: boolean; pidfd: boolean }): NativeProcessRead[] {
  return nativeAddon().readProcesses(procRoot, Int32Array.from(pids), {
    stat: true,
    status: false,
    threads: false,
    cmdline: options.cmdline,
    pidfd: options.pidfd,
  });
}

/** Is this /proc read of the same task the iterator saw? */
function sameTask(entry: ProcessEntry, read: NativeProcessRead): boolean {
  if (entry.pidfdIno !== undefined && read.pidfdIno !== undefined) return entry.pidfdIno === read.pidfdIno;
  if (!read.stat) return false;
  try {
    return ticksToNs(parseStat(read.stat).startTicks) === (entry.startNs / TICK_NS) * TICK_NS;
  } catch {
    return false;
  }
}

export interface TaskIteratorOptions {
  /** Try the sleepable program that copies argv (default true). */
  cmdline?: boolean;
  verbose?: boolean;
  /**
   * `'auto'` (default): use the iterator `pidgen pin` left beside the
   * counter, loading nothing; `'never'`: load a private one.
   */
  pinned?: 'auto' | 'never';
  pinDir?: string;
}

// pidgen_meta.iter, bpf/pidgen.h
const PINNED_ITER = 0x1;
const PINNED_ITER_SLEEPABLE = 0x2;

/** A loaded task iterator, reusable across snapshots. */
export class TaskIterator implements Disposable {
  /** Where argv comes from: the iterator itself, or /proc (kernel < 5.18). */
  readonly cmdlineFrom: 'bpf' | 'procfs';
  /** Why the sleepable program did not load, if it did not. */
  readonly sleepableRefused?: string;
  /** This is the iterator `pidgen pin` left in bpffs: nothing was loaded. */
  readonly pinned: boolean;
  #native: NativeTaskIterator;

  private constructor(native: NativeTaskIterator, pinned: boolean, refused?: string) {
    this.#native = native;
    this.pinned = pinned;
    this.cmdlineFrom = native.sleepable ? 'bpf' : 'procfs';
    if (refused !== undefined) this.sleepableRefused = refused;
  }

  /**
   * The pinned iterator if there is one (see {@link TaskIteratorOptions.pinned}),
   * else loads one: sleepable (argv included) where the kernel allows, else plain.
   */
  static open(options: TaskIteratorOptions = {}): TaskIterator {
    const addon = nativeAddon();
    const verbose = options.verbose ?? false;
    const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
    if ((options.pinned ?? 'auto') === 'auto' && existsSync(`${pinDir}/iter`) && existsSync(`${pinDir}/meta`)) {
      const meta = addon.readPinnedMeta(pinDir);
      if (meta.layoutVersion === addon.layoutVersion && meta.iter & PINNED_ITER) {
        const sleepable = (meta.iter & PINNED_ITER_SLEEPABLE) !== 0;
        return new TaskIterator(addon.openTaskIterator({ sleepable, pinnedDir: pinDir }), true);
      }
    }
    let refused: string | undefined;
    if (options.cmdline ?? true) {
      try {
        return new TaskIterator(addon.openTaskIterator({ sleepable: true, verbose }), false);
      } catch (error) {
        if (!(error instanceof PidgenError)) throw error;
        refused = error.message;
      }
    }
    return new TaskIterator(addon.openTaskIterator({ sleepable: false, verbose }), false, refused);
  }

  /**
   * Pins this iterator beside a pinned counter (`pidgen pin`), so later
   * snapshots read it without loading anything. Returns the meta flags.
   */
  pin(dir: string): number {
    this.#native.pin(dir);
    return PINNED_ITER | (this.cmdlineFrom === 'bpf' ? PINNED_ITER_SLEEPABLE : 0);
  }

  /** Every record of one pass. */
  read(options: { threads: boolean; cmdline: boolean }): TaskRecord[] {
    const flags = (options.threads ? ITER_THREADS : 0) | (options.cmdline ? ITER_CMDLINE : 0);
    return parseTaskRecords(this.#native.read(flags));
  }

  /**
   * Process entries for the namespace the calling process is in: one
   * iterator pass, then /proc for argv the pass could not give and for
   * processes /proc lists that the pass did not visit.
   */
  walk(procRoot: string, options: { threads: boolean; pidfd: boolean }): ProcessEntry[] {
    const { entries, needArgv } = recordsToEntries(this.read({ threads: options.threads, cmdline: true }), options.threads);

    if (needArgv.length > 0) {
      const ENOENT = 2;
      const ESRCH = 3;
      for (const read of readTopUp(procRoot, needArgv, { cmdline: true, pidfd: options.pidfd })) {
        const entry = entries.get(read.pid);
        if (!entry) continue;
        const gone = [read.openErr, read.statErr, read.cmdlineErr].some((e) => e === ENOENT || e === ESRCH);
        if (gone || (read.cmdline && !sameTask(entry, read))) {
          // Gone, or the number already names another task: the task the
          // iterator saw died after the pass, so it may be left out (it was
          // not alive for the whole window).
          entries.delete(read.pid);
          continue;
        }
        if (!read.cmdline) {
          // Any other failure (EACCES under hidepid=): keep the task, say
          // what is missing.
          (entry.unreadable ??= []).push('cmdline');
          continue;
        }
        const argv = parseCmdline(read.cmdline);
        entry.cmdline = argv.argv;
        if (argv.lossy) (entry.lossy ??= []).push('cmdline');
      }
    }

    const kthreads = [...entries.values()].filter((e) => e.kernelThread).map((e) => e.pid);
    if (kthreads.length > 0) {
      for (const read of readTopUp(procRoot, kthreads, { cmdline: false, pidfd: false })) {
        const entry = entries.get(read.pid);
        if (!entry || !read.stat || !sameTask(entry, read)) continue;
        const comm = parseStat(read.stat).comm;
        for (const thread of entry.threads) if (thread.tid === entry.pid) thread.comm = comm;
        entry.comm = comm;
      }
    }

    const missed = listPids(procRoot).filter((pid) => !entries.has(pid));
    for (const entry of readProcessEntries(procRoot, missed, options)) entries.set(entry.pid, entry);

    return [...entries.values()].sort((a, b) => a.pid - b.pid);
  }

  close(): void {
    this.#native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
