/**
 * The BPF task iterator (bpf/task_iter.bpf.c): loading or opening the pinned
 * one, and parsing one pass of its packed records with no native call per
 * record. Turning records into snapshot entries is the bpf-iter source's job
 * (source/bpf-iter.ts).
 */
import { existsSync } from 'node:fs';
import { PidgenError } from '../errors.js';
import {
  DEFAULT_PIN_DIR,
  ITER_CMDLINE,
  ITER_THREADS,
  PIN_NAMES,
  PINNED_ITER,
  PINNED_ITER_SLEEPABLE,
  TASK_CMDLINE,
  TASK_CMDLINE_FAILED,
  TASK_CMDLINE_TRUNCATED,
  TASK_RECORD as R,
} from '../model/layout.js';
import { nativeAddon, type NativeTaskIterator } from '../native/addon.js';
import { decodeComm } from '../procfs/decode.js';

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

/**
 * The framing of one pass of packed records (struct pidgen_task_record,
 * then argv bytes padded to 8 when TASK_CMDLINE is set): for record i,
 * offsets[2i] is where it starts and offsets[2i+1] where its argv ends (-1
 * when none follows). Fields are then read at fixed offsets (TASK_RECORD),
 * so a pass is parsed without an object per record.
 */
export function taskRecordOffsets(buffer: Uint8Array): Int32Array {
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let offsets = new Int32Array(2 * Math.floor(buffer.byteLength / R.size));
  let count = 0;
  let offset = 0;
  while (offset + R.size <= buffer.byteLength) {
    const at = offset;
    offset += R.size;
    let cmdlineEnd = -1;
    if (view.getUint32(at + R.recordFlags, true) & TASK_CMDLINE) {
      cmdlineEnd = offset + view.getUint32(at + R.cmdlineLen, true);
      if (cmdlineEnd > buffer.byteLength) {
        throw new PidgenError(`parse task iterator output: record for tid ${view.getUint32(at + R.tid, true)} runs past the end`, {
          code: 'EBADMSG',
          op: 'parse task iterator output',
        });
      }
      offset += (cmdlineEnd - offset + 7) & ~7;
    }
    offsets[count++] = at;
    offsets[count++] = cmdlineEnd;
  }
  if (count < offsets.length) offsets = offsets.subarray(0, count);
  return offsets;
}

/** Why argv is missing from a record without argv bytes. */
export function cmdlineMissing(recordFlags: number): 'not-copied' | 'truncated' | 'failed' {
  if (recordFlags & TASK_CMDLINE_TRUNCATED) return 'truncated';
  if (recordFlags & TASK_CMDLINE_FAILED) return 'failed';
  return 'not-copied';
}

/** Parses one pass of packed records (see struct pidgen_task_record). */
export function parseTaskRecords(buffer: Uint8Array): TaskRecord[] {
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const offsets = taskRecordOffsets(buffer);
  const records: TaskRecord[] = [];
  for (let i = 0; i < offsets.length; i += 2) {
    const at = offsets[i]!;
    const cmdlineEnd = offsets[i + 1]!;
    const comm = decodeComm(bytes.subarray(at + R.comm, at + R.commEnd));
    const record: TaskRecord = {
      startNs: view.getBigUint64(at + R.startNs, true),
      ino: view.getBigUint64(at + R.ino, true),
      tgid: view.getUint32(at + R.tgid, true),
      tid: view.getUint32(at + R.tid, true),
      ppid: view.getUint32(at + R.ppid, true),
      uid: view.getUint32(at + R.uid, true),
      flags: view.getUint32(at + R.flags, true),
      state: view.getUint32(at + R.state, true),
      exitState: view.getUint32(at + R.exitState, true),
      comm: comm.text,
      commLossy: comm.lossy,
    };
    if (cmdlineEnd >= 0) record.cmdline = bytes.subarray(at + R.size, cmdlineEnd);
    else record.cmdlineMissing = cmdlineMissing(view.getUint32(at + R.recordFlags, true));
    records.push(record);
  }
  return records;
}

function iterFlags(options: { threads: boolean; cmdline: boolean }): number {
  return (options.threads ? ITER_THREADS : 0) | (options.cmdline ? ITER_CMDLINE : 0);
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

/** A loaded task iterator, reusable across snapshots. */
export class TaskIterator implements Disposable {
  /** Where argv comes from: the iterator itself, or /proc (kernel < 5.18). */
  readonly cmdlineFrom: 'bpf' | 'procfs';
  /** This is the iterator `pidgen pin` left in bpffs: nothing was loaded. */
  readonly pinned: boolean;
  #native: NativeTaskIterator;

  private constructor(native: NativeTaskIterator, pinned: boolean) {
    this.#native = native;
    this.pinned = pinned;
    this.cmdlineFrom = native.sleepable ? 'bpf' : 'procfs';
  }

  /**
   * The pinned iterator if there is one (see {@link TaskIteratorOptions.pinned}),
   * else loads one: sleepable (argv included) where the kernel allows, else plain.
   */
  static open(options: TaskIteratorOptions = {}): TaskIterator {
    const pinned = TaskIterator.#openPinned(options);
    if (pinned) return pinned;
    const addon = nativeAddon();
    const verbose = options.verbose ?? false;
    if (options.cmdline ?? true) {
      try {
        return new TaskIterator(addon.openTaskIterator({ sleepable: true, verbose }), false);
      } catch (error) {
        // Sleepable task iterators need 5.18: fall back to the plain one.
        if (!(error instanceof PidgenError)) throw error;
      }
    }
    return new TaskIterator(addon.openTaskIterator({ sleepable: false, verbose }), false);
  }

  /**
   * {@link open}, with the load (libbpf and the verifier, tens of
   * milliseconds) on a worker thread: the caller loads the guard meanwhile.
   */
  static async openAsync(options: TaskIteratorOptions = {}): Promise<TaskIterator> {
    const pinned = TaskIterator.#openPinned(options);
    if (pinned) return pinned;
    const addon = nativeAddon();
    const verbose = options.verbose ?? false;
    if (options.cmdline ?? true) {
      try {
        return new TaskIterator(await addon.openTaskIteratorAsync({ sleepable: true, verbose }), false);
      } catch (error) {
        if (!(error instanceof PidgenError)) throw error;
      }
    }
    return new TaskIterator(await addon.openTaskIteratorAsync({ sleepable: false, verbose }), false);
  }

  /** The iterator `pidgen pin` left beside the counter, when allowed and there. */
  static #openPinned(options: TaskIteratorOptions): TaskIterator | undefined {
    const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
    if ((options.pinned ?? 'auto') !== 'auto' || !existsSync(`${pinDir}/${PIN_NAMES.iter}`) || !existsSync(`${pinDir}/${PIN_NAMES.meta}`)) return undefined;
    const addon = nativeAddon();
    const meta = addon.readPinnedMeta(pinDir);
    if (meta.layoutVersion !== addon.layoutVersion || !(meta.iter & PINNED_ITER)) return undefined;
    const sleepable = (meta.iter & PINNED_ITER_SLEEPABLE) !== 0;
    return new TaskIterator(addon.openTaskIterator({ sleepable, pinnedDir: pinDir }), true);
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
    return parseTaskRecords(this.readBytes(options));
  }

  /** One pass as the packed bytes the iterator wrote ({@link taskRecordOffsets} frames them). */
  readBytes(options: { threads: boolean; cmdline: boolean }): Buffer {
    return this.#native.read(iterFlags(options));
  }

  /**
   * {@link readBytes}, and the processes `procRoot` lists, read at the same
   * time (on a second thread): the bpf-iter source checks the pass against
   * /proc's list every time.
   */
  readBytesAndList(options: { threads: boolean; cmdline: boolean }, procRoot: string): { pass: Buffer; listed: Int32Array } {
    const [pass, listed] = this.#native.readListing(iterFlags(options), procRoot);
    return { pass, listed };
  }

  close(): void {
    this.#native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
