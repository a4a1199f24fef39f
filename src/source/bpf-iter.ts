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
import { PF_KTHREAD } from '../model/layout.js';
import type { ProcessEntry, ThreadEntry } from '../model/snapshot.js';
import { nativeAddon, type NativeProcessRead } from '../native/addon.js';
import { stateLetter, type TaskIterator, type TaskRecord } from '../iter/task-iter.js';
import { parseCmdline, parseStat, ticksToNs } from '../procfs/parse.js';
import { readOutcome } from './outcome.js';
import { listPids, ProcfsSource } from './procfs.js';
import type { ReadSettings, Source } from './source.js';

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
    const { entries, needArgv } = recordsToEntries(this.iterator.read({ threads, cmdline: true }), threads);
    if (needArgv.length > 0) topUpArgv(entries, readTopUp(procRoot, needArgv, { cmdline: true, pidfd }));
    const kthreads = [...entries.values()].filter((e) => e.kernelThread).map((e) => e.pid);
    if (kthreads.length > 0) topUpKthreadNames(entries, readTopUp(procRoot, kthreads, { cmdline: false, pidfd: false }));
    const missed = listPids(procRoot).filter((pid) => !entries.has(pid));
    for (const [pid, entry] of this.#procfs.reread(missed)) entries.set(pid, entry);
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
