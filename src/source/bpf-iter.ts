/**
 * The `bpf-iter` source: every task of the scanning namespace from one BPF
 * task-iterator pass (iter/task-iter.ts), grouped into process entries.
 *
 * Where the iterator cannot give a fact, /proc fills in, for the few
 * processes concerned, through the procfs source's batch reader:
 * - argv, when the sleepable program does not load (kernel < 5.18), or for a
 *   process whose argv is longer than the copy buffer, could not be copied,
 *   or was rewritten in place (no trailing NUL: /proc has rules for that);
 * - the name of a kernel thread: task->comm holds 15 bytes, while /proc
 *   shows a kthread's full name and a workqueue worker's current work
 *   (proc_task_name(): "kworker/0:1-events");
 * - a process /proc lists that the iterator did not visit. This happens: on
 *   some hosts the kernel's iterator skips a task (PID 1 of the VM this was
 *   built on), and a snapshot must list every task alive for its window.
 * Each top-up is checked to be the same task (model/identity.ts).
 *
 * Re-reads go to /proc too: the iterator cannot be pointed at a handful of
 * PIDs cheaply, and a repair reads only a few.
 */
import { decidedByInode, sameTask } from '../model/identity.js';
import { PF_KTHREAD, TASK_RECORD as R } from '../model/layout.js';
import type { ProcessEntry, ThreadEntry } from '../model/snapshot.js';
import { nativeAddon, type NativeProcessRead } from '../native/addon.js';
import { stateLetter, taskRecordOffsets, type TaskIterator } from '../iter/task-iter.js';
import { decodeCommAt, type DecodedText } from '../procfs/decode.js';
import { parseCmdline, parseStat, ticksToNs } from '../procfs/parse.js';
import { readOutcome } from './outcome.js';
import { timed } from '../profile.js';
import { ProcfsSource } from './procfs.js';
import type { ReadSettings, Source } from './source.js';

/**
 * Groups one pass's packed records into process entries in a single walk,
 * with no object per record in between (the pass is the snapshot's hot
 * path: thousands of tasks). Returns the entries and the pids whose argv
 * must come from /proc.
 */
export function entriesFromPass(bytes: Buffer, threads: boolean): { entries: Map<number, ProcessEntry>; needArgv: number[] } {
  // Typed-array views, not DataView calls: this loop also runs once in a
  // fresh `pidgen snapshot` process, before V8 has compiled it, where every
  // call costs. The iterator writes host-endian words, 8-byte aligned.
  const pass = bytes.byteOffset % 8 === 0 ? bytes : aligned(bytes);
  const words = new Uint32Array(pass.buffer, pass.byteOffset, pass.byteLength >> 2);
  const quads = new BigUint64Array(pass.buffer, pass.byteOffset, pass.byteLength >> 3);
  const offsets = taskRecordOffsets(pass);
  const entries = new Map<number, ProcessEntry>();
  const needArgv: number[] = [];
  // Threads whose leader comes later in the pass (a thread can hold a lower
  // number than its leader after the numbers wrapped).
  let early: { tgid: number; thread: ThreadEntry }[] | undefined;
  // The previous record's name, reused when a record's 16 bytes are the
  // same (threads are mostly named like their process).
  let lastComm: DecodedText = { text: '', lossy: false };
  let lastCommAt = -1;
  for (let i = 0; i < offsets.length; i += 2) {
    const at = offsets[i]!;
    const w = at >> 2;
    const tid = words[w + W.tid]!;
    const tgid = words[w + W.tgid]!;
    if (tid !== tgid && !threads) continue;
    const c = w + W.comm;
    const l = lastCommAt >> 2;
    if (lastCommAt < 0 || words[c] !== words[l] || words[c + 1] !== words[l + 1] || words[c + 2] !== words[l + 2] || words[c + 3] !== words[l + 3]) {
      lastComm = decodeCommAt(pass, at + R.comm, at + R.commEnd);
    }
    lastCommAt = at + R.comm;
    const comm = lastComm;
    const exitState = words[w + W.exitState]!;
    const state = stateLetter(words[w + W.state]!, exitState);
    const startNs = quads[(at >> 3) + Q.startNs]!;
    if (tid !== tgid) {
      const thread: ThreadEntry = { tid, comm: comm.text, state, startNs };
      const entry = entries.get(tgid);
      if (entry) entry.threads.push(thread);
      else (early ??= []).push({ tgid, thread });
      continue;
    }
    const kernelThread = (words[w + W.flags]! & PF_KTHREAD) !== 0;
    const argv = cmdlineOf(pass, at + R.size, offsets[i + 1]!, kernelThread || exitState !== 0);
    if (!argv) needArgv.push(tgid);
    const entry: ProcessEntry = {
      pid: tgid,
      ppid: words[w + W.ppid]!,
      uid: words[w + W.uid]!,
      comm: comm.text,
      cmdline: argv?.argv ?? [],
      state,
      startNs,
      startExact: true,
      kernelThread,
      threads: threads ? [{ tid, comm: comm.text, state, startNs }] : [],
    };
    const ino = quads[(at >> 3) + Q.ino]!;
    if (ino !== 0n) entry.pidfdIno = ino;
    if (comm.lossy || argv?.lossy) entry.lossy = comm.lossy && argv?.lossy ? ['comm', 'cmdline'] : comm.lossy ? ['comm'] : ['cmdline'];
    entries.set(tgid, entry);
  }
  // A thread whose leader the iterator did not list (it exited between the
  // two) has no process entry to go in: it is left out, as /proc would not
  // list it either once the leader is gone.
  const unsorted = new Set<ProcessEntry>();
  for (const { tgid, thread } of early ?? []) {
    const entry = entries.get(tgid);
    if (!entry) continue;
    entry.threads.push(thread);
    unsorted.add(entry);
  }
  for (const entry of unsorted) entry.threads.sort((x, y) => x.tid - y.tid);
  return { entries, needArgv };
}

/** A copy at offset 0 of its own memory (Buffer.alloc is never pooled). */
function aligned(bytes: Buffer): Buffer {
  const copy = Buffer.alloc(bytes.length);
  bytes.copy(copy);
  return copy;
}

/** TASK_RECORD's offsets in 32-bit words, and in 64-bit ones. */
const W = { tgid: R.tgid >> 2, tid: R.tid >> 2, ppid: R.ppid >> 2, uid: R.uid >> 2, flags: R.flags >> 2, state: R.state >> 2, exitState: R.exitState >> 2, comm: R.comm >> 2 } as const;
const Q = { startNs: R.startNs >> 3, ino: R.ino >> 3 } as const;

/**
 * argv as /proc would show it, from the bytes at pass[start, end) (end -1:
 * none were copied), or undefined when /proc must be asked.
 */
function cmdlineOf(pass: Buffer, start: number, end: number, noMm: boolean): { argv: string[]; lossy: boolean } | undefined {
  // Kernel threads and zombies have no mm: an empty cmdline, as in /proc.
  if (noMm) return { argv: [], lossy: false };
  if (end < 0) return undefined;
  if (end === start) return { argv: [], lossy: false };
  // No trailing NUL: the process rewrote its argv area, and /proc then
  // applies its own rules (get_mm_cmdline may read on into the env area).
  if (pass[end - 1] !== 0) return undefined;
  return parseCmdline(pass.subarray(start, end));
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

/** Is this /proc read of the task the iterator saw? */
function isOfTask(entry: ProcessEntry, read: NativeProcessRead): boolean {
  let startNs: bigint | undefined;
  try {
    if (read.stat) startNs = ticksToNs(parseStat(read.stat).startTicks);
  } catch {
    // An unparsable stat proves nothing; the inode may still decide.
  }
  const seen = { startNs: startNs ?? -1n, pidfdIno: read.pidfdIno };
  if (startNs === undefined && !decidedByInode(entry, seen)) return false;
  return sameTask(entry, seen);
}

/** The task iterator as a {@link Source}, for the namespace the calling process is in. */
export class BpfIterSource implements Source {
  readonly kind = 'bpf-iter' as const;
  readonly cmdlineFrom: 'bpf' | 'procfs';
  readonly listsThreads: boolean;
  readonly #procfs: ProcfsSource;

  constructor(
    private readonly iterator: TaskIterator,
    private readonly settings: ReadSettings,
  ) {
    this.cmdlineFrom = iterator.cmdlineFrom;
    this.listsThreads = settings.threads;
    this.#procfs = new ProcfsSource(settings);
  }

  /** One iterator pass, then /proc for what the pass could not give. */
  walk(): ProcessEntry[] {
    const { procRoot, threads, pidfd } = this.settings;
    // /proc is listed during the pass, not after it: either way the list
    // is taken inside the window, and a process it shows that the pass did
    // not is read below.
    const { pass, listed } = timed('kernel pass', () => this.iterator.readBytesAndList({ threads, cmdline: true }, procRoot));
    const { entries, needArgv } = timed('parse', () => entriesFromPass(pass, threads));
    timed('top-ups', () => {
      if (needArgv.length > 0) topUpArgv(entries, readTopUp(procRoot, needArgv, { cmdline: true, pidfd }));
      const kthreads = [...entries.values()].filter((e) => e.kernelThread).map((e) => e.pid);
      if (kthreads.length > 0) topUpKthreadNames(entries, readTopUp(procRoot, kthreads, { cmdline: false, pidfd: false }));
      const missed: number[] = [];
      for (const pid of listed) if (!entries.has(pid)) missed.push(pid);
      for (const [pid, entry] of this.#procfs.reread(missed)) entries.set(pid, entry);
    });
    return [...entries.values()].sort((a, b) => a.pid - b.pid);
  }

  reread(pids: readonly number[]): Map<number, ProcessEntry> {
    return this.#procfs.reread(pids);
  }
}

function topUpArgv(entries: Map<number, ProcessEntry>, reads: NativeProcessRead[]): void {
  for (const read of reads) {
    const entry = entries.get(read.pid);
    if (!entry) continue;
    if (readOutcome(read) === 'gone' || (read.cmdline && !isOfTask(entry, read))) {
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

function topUpKthreadNames(entries: Map<number, ProcessEntry>, reads: NativeProcessRead[]): void {
  for (const read of reads) {
    const entry = entries.get(read.pid);
    if (!entry || !read.stat || !isOfTask(entry, read)) continue;
    const comm = parseStat(read.stat).comm;
    for (const thread of entry.threads) if (thread.tid === entry.pid) thread.comm = comm;
    entry.comm = comm;
  }
}
