// The recorder's log (recorder.c, struct recorder_event in recorder.h) read
// back into one timeline per task, and per PID number the tasks that held it.
//
// What each recorded time bounds (recorder.bpf.c has the kernel reasons):
//   startNs    task->start_boottime: exact. The PID was taken just before,
//              the task became visible just after, both inside copy_process().
//   newtaskNs  task_newtask: the task is visible (attach_pid() ran before).
//   rename     task_rename fires before the new comm is copied in; the copy
//              is done before the renaming task's next recorded event.
//   exitNs     sched_process_exit: early in do_exit(). The task still holds
//              its PID then, and until its release.
//   release    no tracepoint marks it (free_pid() in release_task()), so it
//              is bracketed, each bound a kernel ordering, not a guess:
//                lower: exitNs; for a child reaped by wait4, also the start
//                       of the do_wait() that reaped it;
//                upper: the return of that wait4; for a thread (it releases
//                       itself in exit_notify()), its final switch out;
//                       always the successor's startNs (the number had to be
//                       freed first) and sched_process_free (an RCU grace
//                       period after the release), where it was seen; at the
//                       least, the end of the recording.
//              On a churning 2-core machine the bracket is a few µs for
//              reaped children and tens of µs for threads (releaseStats).
import { readFileSync } from 'node:fs';

export const RECORD_SIZE = 96;

const NEW = 1;
const RENAME = 2;
const EXEC = 3;
const WAITED = 4;
const END = 5;
const EXIT = 6;

/** The loader's JSON summary: which namespace, and whether the log has a hole. */
export interface RecorderSummary {
  inum: number;
  level: number;
  recordSize: number;
  events: number;
  seq: number;
  dropped: number;
  /** New tasks that got no task storage: their later events were not recorded. */
  storageFailed: number;
  /** Exits of tasks of the namespace whose birth was missed. */
  unknownExits: number;
  unaccounted: number;
  /** Runs the kernel skipped because the program was already running on that CPU. */
  recursionMisses: number;
  born: number;
  ended: number;
  writeFailed: boolean;
  startedNs: string;
  stoppedNs: string;
  status: number;
}

/** One value a task's comm had, and when a reader could have seen it. */
export interface CommSpan {
  comm: string;
  /** From: the birth (startNs) or the task_rename that set it. */
  fromNs: bigint;
  /** Until: the next rename's copy was done by then; null while it was the last. */
  untilNs: bigint | null;
  /** While the next rename copies, a reader may see a mix of both (word by word). */
  nextComm?: string;
  nextFromNs?: bigint;
}

export interface RecordedTask {
  tid: number;
  tgid: number;
  leader: boolean;
  startNs: bigint;
  /** pidfs inode of its struct pid (6.9+), else 0n. */
  ino: bigint;
  newtaskNs: bigint;
  /** Real parent at birth: its tgid (0: outside the namespace) and start. */
  ppid: number;
  parentStartNs: bigint;
  /** The thread that forked it (0: outside the namespace). */
  creator: number;
  cloneFlags: number;
  birthComm: string;
  comms: CommSpan[];
  /** exec seen, and whether it moved a thread onto the leader's PID. */
  execs: { atNs: bigint; comm: string; tidChanged: boolean }[];
  exitNs: bigint | null;
  /** Final switch out (TASK_DEAD). */
  deadNs: bigint | null;
  /** sched_process_free (null: not seen; the bracket then uses the other bounds). */
  freeNs: bigint | null;
  exitCode: number;
  endComm: string;
  /** The wait4 that reaped it. */
  waited?: { beginNs: bigint; returnNs: bigint; by: number };
  /** The next task to hold the same number. */
  successor?: RecordedTask;
  /** When its PID was released: in [loNs, hiNs]. */
  release: { loNs: bigint; hiNs: bigint };
}

export interface RecorderLog {
  summary: RecorderSummary;
  tasks: RecordedTask[];
  /** Holders of each number in the namespace, by start time. */
  byNumber: Map<number, RecordedTask[]>;
  /** Problems in the log itself: each one makes it unusable as ground truth. */
  problems: string[];
}

/** Tasks by (tid, start): start_boottime alone almost always names one task. */
class TaskIndex {
  #byStart = new Map<bigint, RecordedTask | RecordedTask[]>();
  get(tid: number, startNs: bigint): RecordedTask | undefined {
    const hit = this.#byStart.get(startNs);
    if (!hit) return undefined;
    if (!Array.isArray(hit)) return hit.tid === tid ? hit : undefined;
    return hit.find((t) => t.tid === tid);
  }
  /** False if a task with this (tid, start) is there already. */
  put(task: RecordedTask): boolean {
    const hit = this.#byStart.get(task.startNs);
    if (!hit) this.#byStart.set(task.startNs, task);
    else if (this.get(task.tid, task.startNs)) return false;
    else this.#byStart.set(task.startNs, Array.isArray(hit) ? [...hit, task] : [hit, task]);
    return true;
  }
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1');
}

/** One record, as encodeEvents takes it (unit tests build logs with it). */
export interface RawEvent {
  seq: bigint;
  timeNs: bigint;
  startNs: bigint;
  ino: bigint;
  actorStart: bigint;
  t1: bigint;
  t2: bigint;
  kind: number;
  tid: number;
  tgid: number;
  actor: number;
  n1: number;
  n2: number;
  comm: string;
}

/**
 * Field readers over the raw log, at struct recorder_event's offsets. Times
 * and inodes are read as two 32-bit halves: exact below 2^53 ns (104 days
 * of uptime), and much cheaper than a BigInt read for millions of records.
 */
function reader(buffer: Buffer) {
  const u64 = (o: number): bigint => {
    const value = buffer.readUInt32LE(o) + buffer.readUInt32LE(o + 4) * 4294967296;
    if (value > Number.MAX_SAFE_INTEGER) return buffer.readBigUInt64LE(o);
    return BigInt(value);
  };
  return {
    count: buffer.length / RECORD_SIZE,
    seq: (i: number) => buffer.readUInt32LE(i * RECORD_SIZE) + buffer.readUInt32LE(i * RECORD_SIZE + 4) * 4294967296,
    timeNs: (i: number) => u64(i * RECORD_SIZE + 8),
    startNs: (i: number) => u64(i * RECORD_SIZE + 16),
    ino: (i: number) => u64(i * RECORD_SIZE + 24),
    actorStart: (i: number) => u64(i * RECORD_SIZE + 32),
    t1: (i: number) => u64(i * RECORD_SIZE + 40),
    t2: (i: number) => u64(i * RECORD_SIZE + 48),
    kind: (i: number) => buffer.readUInt32LE(i * RECORD_SIZE + 56),
    tid: (i: number) => buffer.readUInt32LE(i * RECORD_SIZE + 60),
    tgid: (i: number) => buffer.readUInt32LE(i * RECORD_SIZE + 64),
    actor: (i: number) => buffer.readUInt32LE(i * RECORD_SIZE + 68),
    n1: (i: number) => buffer.readUInt32LE(i * RECORD_SIZE + 72),
    n2: (i: number) => buffer.readUInt32LE(i * RECORD_SIZE + 76),
    comm: (i: number) => {
      const start = i * RECORD_SIZE + 80;
      let end = start;
      while (end < start + 16 && buffer[end] !== 0) end++;
      return buffer.toString('latin1', start, end);
    },
  };
}

/** Encodes events the way the BPF side writes them (for hand-built logs in unit tests). */
export function encodeEvents(events: readonly Partial<RawEvent>[]): Buffer {
  const buffer = Buffer.alloc(events.length * RECORD_SIZE);
  events.forEach((e, i) => {
    const o = i * RECORD_SIZE;
    buffer.writeBigUInt64LE(e.seq ?? BigInt(i), o);
    buffer.writeBigUInt64LE(e.timeNs ?? 0n, o + 8);
    buffer.writeBigUInt64LE(e.startNs ?? 0n, o + 16);
    buffer.writeBigUInt64LE(e.ino ?? 0n, o + 24);
    buffer.writeBigUInt64LE(e.actorStart ?? 0n, o + 32);
    buffer.writeBigUInt64LE(e.t1 ?? 0n, o + 40);
    buffer.writeBigUInt64LE(e.t2 ?? 0n, o + 48);
    buffer.writeUInt32LE(e.kind ?? 0, o + 56);
    buffer.writeUInt32LE(e.tid ?? 0, o + 60);
    buffer.writeUInt32LE(e.tgid ?? 0, o + 64);
    buffer.writeUInt32LE(e.actor ?? 0, o + 68);
    buffer.writeUInt32LE(e.n1 ?? 0, o + 72);
    buffer.writeUInt32LE(e.n2 ?? 0, o + 76);
    buffer.write((e.comm ?? '').slice(0, 15), o + 80, 'latin1');
  });
  return buffer;
}

export const EVENT_KINDS = { NEW, RENAME, EXEC, WAITED, END, EXIT } as const;

const maxBig = (a: bigint, b: bigint): bigint => (a > b ? a : b);
const minBig = (a: bigint, b: bigint): bigint => (a < b ? a : b);

/**
 * Builds every task's timeline from the events, and checks the log is whole.
 * Events come in ring order (the order the programs reserved their records),
 * which is time order for any one task: a child runs only after the
 * task_newtask of its own fork, and its later events follow each other.
 */
export function buildLog(buffer: Buffer, summary: RecorderSummary): RecorderLog {
  const problems: string[] = [];
  if (buffer.length % RECORD_SIZE !== 0) {
    throw new Error(`recorder log: ${buffer.length} bytes is not a whole number of ${RECORD_SIZE}-byte records`);
  }
  const r = reader(buffer);
  if (summary.dropped) problems.push(`${summary.dropped} events dropped (ring buffer full)`);
  if (summary.storageFailed) problems.push(`${summary.storageFailed} new tasks got no task storage`);
  if (summary.unknownExits) problems.push(`${summary.unknownExits} tasks of the namespace exited without a recorded birth`);
  if (summary.unaccounted) problems.push(`${summary.unaccounted} sequence numbers neither logged nor counted as dropped`);
  if (summary.recursionMisses) problems.push(`the kernel skipped the programs ${summary.recursionMisses} times (recursion misses)`);
  if (summary.writeFailed) problems.push('writing the log failed');
  if (summary.recordSize !== RECORD_SIZE) problems.push(`record size ${summary.recordSize}, expected ${RECORD_SIZE}`);
  if (r.count !== summary.events) problems.push(`${r.count} records in the file, the loader wrote ${summary.events}`);
  const seen = new Uint8Array(summary.seq);
  let distinct = 0;
  for (let i = 0; i < r.count; i++) {
    const seq = r.seq(i);
    if (seq >= seen.length) problems.push(`sequence number ${seq} beyond the ${summary.seq} handed out`);
    else if (seen[seq]) problems.push(`sequence number ${seq} twice`);
    else {
      seen[seq] = 1;
      distinct++;
    }
  }
  if (distinct !== summary.seq - summary.dropped) {
    problems.push(`${summary.seq} sequence numbers handed out, ${distinct} logged, ${summary.dropped} dropped`);
  }

  const tasks: RecordedTask[] = [];
  const index = new TaskIndex();
  /**
   * Spans whose end waits for their renamer's next action: a rename's copy
   * is done before the renaming task runs its next recorded event. One
   * task's events are in ring order, so "next" is the next one in the file.
   */
  const pending = new Map<RecordedTask, CommSpan[]>();
  const acted = (actor: RecordedTask | undefined, atNs: bigint) => {
    if (!actor) return;
    const spans = pending.get(actor);
    if (!spans) return;
    for (const span of spans) span.untilNs = atNs;
    pending.delete(actor);
  };
  const waits: { timeNs: bigint; beginNs: bigint; by: number; nr: number }[] = [];

  for (let i = 0; i < r.count; i++) {
    if (r.kind(i) !== NEW) continue;
    const tid = r.tid(i);
    const tgid = r.tgid(i);
    const task: RecordedTask = {
      tid,
      tgid,
      leader: tid === tgid,
      startNs: r.startNs(i),
      ino: r.ino(i),
      newtaskNs: r.timeNs(i),
      ppid: r.n1(i),
      parentStartNs: r.t1(i),
      creator: r.actor(i),
      cloneFlags: r.n2(i),
      birthComm: r.comm(i),
      comms: [],
      execs: [],
      exitNs: null,
      deadNs: null,
      freeNs: null,
      exitCode: 0,
      endComm: '',
      release: { loNs: 0n, hiNs: 0n },
    };
    task.comms.push({ comm: task.birthComm, fromNs: task.startNs, untilNs: null });
    if (!index.put(task)) problems.push(`two tasks born as ${tid} at ${task.startNs}`);
    tasks.push(task);
  }

  for (let i = 0; i < r.count; i++) {
    const kind = r.kind(i);
    const actorTid = r.actor(i);
    const actor = actorTid && kind !== END ? index.get(actorTid, r.actorStart(i)) : undefined;
    const timeNs = r.timeNs(i);
    if (kind === NEW) {
      acted(actor, timeNs);
      continue;
    }
    const task = index.get(r.tid(i), r.startNs(i));
    if (!task) {
      problems.push(`event kind ${kind} (seq ${r.seq(i)}) names task ${r.tid(i)} started at ${r.startNs(i)}, never born`);
      continue;
    }
    switch (kind) {
      case RENAME: {
        // Its own run does not finish the copy it announces.
        acted(actor, timeNs);
        const previous = task.comms[task.comms.length - 1]!;
        const comm = r.comm(i);
        previous.nextComm = comm;
        previous.nextFromNs = timeNs;
        task.comms.push({ comm, fromNs: timeNs, untilNs: null });
        if (actor) {
          let spans = pending.get(actor);
          if (!spans) pending.set(actor, (spans = []));
          spans.push(previous);
        }
        if (r.n2(i) !== 0) problems.push(`task ${task.tid} (${task.birthComm}): a rename before the one at ${timeNs} was missed`);
        break;
      }
      case EXEC: {
        const tidChanged = r.n2(i) !== 0;
        task.execs.push({ atNs: timeNs, comm: r.comm(i), tidChanged });
        if (tidChanged) problems.push(`task ${task.tid} exec'd from a non-leader thread: its PID changed (not supported)`);
        acted(actor, timeNs);
        break;
      }
      case WAITED:
        waits.push({ timeNs, beginNs: r.t1(i), by: task.tid, nr: r.n1(i) });
        acted(actor, timeNs);
        break;
      case EXIT:
        if (task.exitNs !== null) problems.push(`task ${task.tid} (${task.birthComm}) exited twice`);
        task.exitNs = timeNs;
        acted(task, timeNs);
        break;
      case END: {
        const deadNs = r.t2(i);
        if (task.freeNs !== null) problems.push(`task ${task.tid} (${task.birthComm}) ended twice`);
        task.freeNs = timeNs;
        task.deadNs = deadNs === 0n ? null : deadNs;
        task.exitCode = r.n2(i);
        task.endComm = r.comm(i);
        if (r.t1(i) === 0n) problems.push(`task ${task.tid} (${task.birthComm}) was freed without a recorded exit`);
        if (task.deadNs !== null) acted(task, task.deadNs);
        break;
      }
      default:
        problems.push(`unknown event kind ${kind} (seq ${r.seq(i)})`);
    }
  }
  for (const task of tasks) {
    const last = task.comms[task.comms.length - 1]!.comm;
    if (task.freeNs !== null && task.endComm !== last) {
      problems.push(`task ${task.tid}: comm at the end ${JSON.stringify(task.endComm)}, but its last rename says ${JSON.stringify(last)}`);
    }
  }

  // Holders of each number, in order; each one's successor.
  const byNumber = new Map<number, RecordedTask[]>();
  for (const task of tasks) {
    let list = byNumber.get(task.tid);
    if (!list) byNumber.set(task.tid, (list = []));
    list.push(task);
  }
  for (const list of byNumber.values()) {
    list.sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
    for (let i = 0; i + 1 < list.length; i++) list[i]!.successor = list[i + 1]!;
  }

  // Each wait4 that returned a pid reaped the latest holder of that number
  // that had exited by then. (Its successor cannot also have been born and
  // exited within the same wait4 call: the number was freed inside it.)
  for (const w of waits) {
    const holders = byNumber.get(w.nr) ?? [];
    let reaped: RecordedTask | undefined;
    for (let i = lastStartedBefore(holders, w.timeNs); i >= 0 && !reaped; i--) {
      const t = holders[i]!;
      if (t.leader && t.exitNs !== null && t.exitNs < w.timeNs && !t.waited) reaped = t;
    }
    if (!reaped) {
      problems.push(`wait4 by ${w.by} returned ${w.nr} at ${w.timeNs}, but no task with that number had exited`);
      continue;
    }
    reaped.waited = { beginNs: w.beginNs, returnNs: w.timeNs, by: w.by };
  }

  // The release bracket. Every task exits before the recording ends (the
  // namespace dies first), so a task without an exit lost it.
  for (const task of tasks) {
    if (task.exitNs === null) problems.push(`task ${task.tid} (${task.birthComm}, start ${task.startNs}) has no recorded exit`);
    let lo = task.exitNs ?? task.startNs;
    const upper: bigint[] = [];
    if (task.freeNs !== null) upper.push(task.freeNs);
    if (task.successor) upper.push(task.successor.startNs);
    if (task.waited) {
      lo = maxBig(lo, task.waited.beginNs);
      upper.push(task.waited.returnNs);
    }
    if (!task.leader && task.deadNs !== null) upper.push(task.deadNs);
    const hi = upper.length ? upper.reduce(minBig) : BigInt(summary.stoppedNs);
    if (hi < lo) {
      problems.push(
        `task ${task.tid} (${task.birthComm}, start ${task.startNs}): release bracket is empty [${lo}, ${hi}]` +
          ` (exit ${task.exitNs}, dead ${task.deadNs}, free ${task.freeNs}, waited ${task.waited?.beginNs}..${task.waited?.returnNs}, successor ${task.successor?.startNs})`,
      );
    }
    task.release = { loNs: lo, hiNs: hi };
  }
  return { summary, tasks, byNumber, problems };
}

/** Index of the last holder that started before t, or -1. */
function lastStartedBefore(holders: readonly RecordedTask[], t: bigint): number {
  let lo = 0;
  let hi = holders.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (holders[mid]!.startNs < t) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Reads a recorder run: the raw log and the loader's summary. */
export function readRecorderLog(logPath: string, summaryPath: string): RecorderLog {
  const summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as RecorderSummary;
  return buildLog(readFileSync(logPath), summary);
}

/** How wide the release brackets are, by kind of task (ns). */
export function releaseStats(log: RecorderLog): Record<'reaped' | 'thread' | 'other', { n: number; median: bigint; p99: bigint; max: bigint }> {
  const groups: Record<'reaped' | 'thread' | 'other', bigint[]> = { reaped: [], thread: [], other: [] };
  for (const t of log.tasks) {
    const width = t.release.hiNs - t.release.loNs;
    (t.waited ? groups.reaped : !t.leader ? groups.thread : groups.other).push(width);
  }
  const summarize = (values: bigint[]) => {
    values.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const at = (q: number) => values[Math.min(values.length - 1, Math.floor(q * values.length))] ?? 0n;
    return { n: values.length, median: at(0.5), p99: at(0.99), max: values[values.length - 1] ?? 0n };
  };
  return { reaped: summarize(groups.reaped), thread: summarize(groups.thread), other: summarize(groups.other) };
}
