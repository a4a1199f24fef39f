/**
 * The procfs source: lists a /proc and turns raw reads into entries.
 * Reads go through the native batch primitive (one directory fd per process,
 * see native/proc_reader.h); parsing is procfs/parse.ts, and what a failed
 * read means is outcome.ts.
 */
import type { ProcessEntry, ThreadEntry, UnreadableField } from '../model/snapshot.js';
import { nativeAddon, type NativeProcessRead } from '../native/addon.js';
import { parseCmdline, parseStat, parseStatus, ticksToNs, type ProcStat } from '../procfs/parse.js';
import { timed } from '../profile.js';
import { readOutcome } from './outcome.js';
import type { ReadSettings, Source } from './source.js';

const EINVAL = 22;

export type ReadOptions = Pick<ReadSettings, 'threads' | 'pidfd'>;

/** The PIDs a /proc lists right now (its numeric entries), ascending. */
export function listPids(procRoot: string): Int32Array {
  return nativeAddon().listPids(procRoot);
}

function safeParseStat(bytes: Buffer): ProcStat | undefined {
  try {
    return parseStat(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Turns one raw read into an entry, or `undefined` when the process is gone.
 * Unreadable files (EACCES under hidepid=, or a stat that does not parse)
 * leave a partial entry that names what is missing.
 */
export function toProcessEntry(read: NativeProcessRead): ProcessEntry | undefined {
  if (readOutcome(read) === 'gone') return undefined;
  if (read.openErr !== undefined) return partialEntry(read.pid, ['stat', 'status', 'cmdline', 'threads', 'uid']);
  // pidfd_open refuses a TID that is not a thread-group leader: the number
  // names a thread, not a process. Status's Tgid (below) says so exactly;
  // this is the fallback for when status could not be read.
  if (read.pidfdErr === EINVAL && read.status === undefined) return undefined;
  const unreadable: UnreadableField[] = [];
  const lossy: ('comm' | 'cmdline')[] = [];

  const stat = read.stat ? safeParseStat(read.stat) : undefined;
  if (!stat) unreadable.push('stat');
  // The fd was opened by number; a stat naming another pid would mean the
  // kernel handed us something else. Treat it as unreadable, not as truth.
  else if (stat.pid !== read.pid) return undefined;

  let uid: number | null = null;
  let statusName: string | undefined;
  if (read.status) {
    const status = parseStatus(read.status);
    // /proc/<n> also resolves the TID of a thread that is not a group
    // leader (readdir hides it, lookup does not). If process n died and a
    // thread elsewhere took n before the open, this is that thread, not a
    // process: it is gone as far as process n is concerned.
    if (status.tgid !== undefined && status.tgid !== read.pid) return undefined;
    uid = status.uid ?? null;
    statusName = status.name;
  }
  if (uid === null) unreadable.push('uid');

  let cmdline: string[] = [];
  if (read.cmdline) {
    const parsed = parseCmdline(read.cmdline);
    cmdline = parsed.argv;
    if (parsed.lossy) lossy.push('cmdline');
  } else if (read.cmdlineErr !== undefined) {
    unreadable.push('cmdline');
  }
  if (stat?.commLossy) lossy.push('comm');

  const threads: ThreadEntry[] = [];
  if (read.threadsErr !== undefined) unreadable.push('threads');
  for (const thread of read.threads ?? []) {
    // A thread that exited between listing task/ and reading it is gone.
    if (!thread.stat) continue;
    const threadStat = safeParseStat(thread.stat);
    if (!threadStat) continue;
    threads.push({
      tid: thread.tid,
      comm: threadStat.comm,
      state: threadStat.state,
      startNs: ticksToNs(threadStat.startTicks),
    });
  }
  if (read.pidfdErr !== undefined) unreadable.push('pidfdIno');

  const entry: ProcessEntry = {
    pid: read.pid,
    ppid: stat?.ppid ?? 0,
    uid,
    comm: stat?.comm ?? statusName ?? '',
    cmdline,
    state: stat?.state ?? '?',
    startNs: stat ? ticksToNs(stat.startTicks) : 0n,
    startExact: false,
    kernelThread: stat?.kernelThread ?? false,
    threads,
  };
  if (read.pidfdIno !== undefined) entry.pidfdIno = read.pidfdIno;
  if (unreadable.length) entry.unreadable = unreadable;
  if (lossy.length) entry.lossy = lossy;
  return entry;
}

function partialEntry(pid: number, unreadable: UnreadableField[]): ProcessEntry {
  return {
    pid,
    ppid: 0,
    uid: null,
    comm: '',
    cmdline: [],
    state: '?',
    startNs: 0n,
    startExact: false,
    kernelThread: false,
    threads: [],
    unreadable,
  };
}

/**
 * Reads these PIDs, each through its own directory fd, in one native call.
 * Returns the entries of processes still there; vanished ones are left out.
 */
export function readProcessEntries(procRoot: string, pids: readonly number[] | Int32Array, options: ReadOptions): ProcessEntry[] {
  const addon = nativeAddon();
  const entries: ProcessEntry[] = [];
  // In batches: one native call per few hundred processes keeps the call
  // count low without holding all of /proc as raw bytes at once (peak RSS).
  for (let first = 0; first < pids.length; first += READ_BATCH) {
    const reads = timed('read', () =>
      addon.readProcesses(procRoot, Int32Array.from(pids.slice(first, first + READ_BATCH)), {
        threads: options.threads,
        cmdline: true,
        status: true,
        pidfd: options.pidfd,
      }),
    );
    timed('parse', () => {
      for (const read of reads) {
        const entry = toProcessEntry(read);
        if (entry) entries.push(entry);
      }
    });
  }
  return entries;
}

const READ_BATCH = 256;

/** The /proc walk as a {@link Source}. */
export class ProcfsSource implements Source {
  readonly kind = 'procfs' as const;
  readonly listsThreads: boolean;
  constructor(private readonly settings: ReadSettings) {
    this.listsThreads = settings.threads;
  }

  walk(): ProcessEntry[] {
    return readProcessEntries(this.settings.procRoot, listPids(this.settings.procRoot), this.settings);
  }

  reread(pids: readonly number[]): Map<number, ProcessEntry> {
    return new Map(readProcessEntries(this.settings.procRoot, pids, this.settings).map((e) => [e.pid, e]));
  }
}
