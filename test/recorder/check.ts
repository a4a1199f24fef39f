// The exact checker: a snapshot held against the recorder's log (log.ts).
// Every case is decided from kernel times; there is no "ambiguous".
//
// Window [W0, W1] = snapshot.window. A task T "holds" its number from its
// startNs (the design's hand-over time) until its release, which the log
// brackets in [release.loNs, release.hiNs] (see log.ts). Categories, and the
// exact rule for each (DESIGN.md, "Coherent means all of these"):
//
//   identity      each entry (process, and every thread) names one task T
//                 the recorder saw: same number; same thread group (a process
//                 entry is a leader, a thread entry's T is in that process);
//                 startNs === T.startNs, or, where the source reads /proc's
//                 clock ticks, floor(T.startNs / 10 ms) * 10 ms (a thread
//                 entry may be either); pidfdIno === T's pidfs inode; comm is
//                 a value T's comm had at some instant of the window (a
//                 rename's copy can be read half done: word-wise mixes of the
//                 two names count); T started by W1; ppid is T's real parent
//                 at birth while that parent had not exited by W1; state Z
//                 only if T had exited by W1.
//   stale         T was released before W0 (release.hiNs < W0: its number
//                 was already freed, or handed on, before the window), or T's
//                 number was handed to a successor S inside the window
//                 (W0 < S.startNs <= W1) and `reused` does not list that
//                 hand-over. This is the window-end race: the snapshot lists
//                 the old task as if it held the number at W1.
//   reuse         for every number N in the snapshot (process pids and
//                 thread tids), every hand-over inside the window — each
//                 holder S of N with W0 < S.startNs <= W1, every one, not
//                 only the last — is listed in `reused` as { pid: N, atNs }
//                 with |atNs - S.startNs| <= AT_NS_TOLERANCE_NS, and each
//                 PID's listings are in time order. A listing that matches no
//                 hand-over of that number at all is a violation too.
//   completeness  every task that held its number for the whole window
//                 (startNs <= W0 and release.loNs >= W1: zombies included) is
//                 in the snapshot: a leader as the process entry with its
//                 number, a thread as a thread of its process's entry, each
//                 identifying T. A task alive at W0 whose release bracket
//                 contains W1 (loNs < W1 <= hiNs) is not required: it was
//                 being released as the window closed, and a read just before
//                 W1 may already miss it. The log cannot order W1 (a
//                 userspace clock read) inside that bracket (µs wide), so the
//                 rule sides with the snapshot there, and the count of such
//                 cases is reported (`releasingAtEnd`).
//   timeline      `exited` (bpf guard only): each item is a task T that exited inside the
//                 window: item.exitNs is no earlier than T's
//                 sched_process_exit (as the recorder saw it) less
//                 EXIT_NS_TOLERANCE_NS, and no later than the end of T's release
//                 (or that tolerance, if later): two programs on one
//                 tracepoint read the clock at different instants, and an
//                 exiting task can be preempted between them for
//                 milliseconds on a loaded machine, but both run before the
//                 release. T's exit is in [W0, W1] within the tolerance;
//                 with T's exact startNs and a comm T had; and every task of
//                 the namespace that exited inside the window and is not an
//                 entry of the snapshot is listed (threads only when the
//                 snapshot has threads), unless its release ended after W1
//                 (pidgen's stamp may then be after W1 too). Exits within the tolerance of W0 or
//                 W1 may be listed or not: the two programs read the clock
//                 at slightly different instants.
import type { ProcessEntry, ReusedPid, Snapshot, ThreadEntry } from '../../src/index.js';
import type { RecordedTask, RecorderLog } from './log.js';

/**
 * How far `reused[].atNs` may be from the new task's start_boottime. The
 * design says the hand-over time is exact: 0.
 */
export const AT_NS_TOLERANCE_NS = 0n;

/**
 * How far a timeline item's exitNs may be from the recorder's
 * sched_process_exit time. The kernel keeps no exit timestamp, so each BPF
 * program reads the clock itself, on the same tracepoint, before or after
 * ours: they differ by the run time of the programs between the two reads.
 */
export const EXIT_NS_TOLERANCE_NS = 1_000_000n;


export const CATEGORIES = ['identity', 'reuse', 'stale', 'completeness', 'timeline'] as const;
export type Category = (typeof CATEGORIES)[number];

export interface ExactViolation {
  category: Category;
  /** The process (tgid) the violation is about. */
  pid: number;
  /** Set for a thread. */
  tid?: number;
  message: string;
}

export interface ExactCheck {
  violations: ExactViolation[];
  /** Entries judged (processes and threads). */
  judged: number;
  /** Hand-overs inside the window of numbers in the snapshot (each must be in `reused`). */
  handOvers: number;
  /** Tasks that held their number for the whole window (each must be there). */
  required: number;
  /** Tasks alive at W0, being released at W1, and missing: not required (see above). */
  releasingAtEnd: number;
  /** Entries whose facts fit more than one task equally (judged by the one that passes). */
  ties: number;
  /** Whether the snapshot had a came-and-went field to check. */
  timeline: 'checked' | 'absent';
  timelineItems: number;
}

export interface ExactCheckOptions {
  /** The snapshot was taken with threads (completeness wants them). Default true. */
  threads?: boolean;
}

/** One came-and-went task, as a snapshot would list it. */
export interface TimelineItem {
  pid: number;
  tid: number;
  comm: string;
  startNs: bigint;
  exitNs: bigint;
}

const TICK_NS = 10_000_000n; // USER_HZ = 100: /proc/<pid>/stat's clock
const floorTick = (ns: bigint): bigint => (ns / TICK_NS) * TICK_NS;
const abs = (x: bigint): bigint => (x < 0n ? -x : x);
const us = (ns: bigint): string => `${(Number(ns) / 1000).toFixed(1)} µs`;

export function describeTask(t: RecordedTask): string {
  const comms = t.comms.map((c) => c.comm);
  const names = comms.length > 4 ? [...comms.slice(0, 2), '…', ...comms.slice(-2)] : comms;
  return (
    `${t.leader ? 'process' : `thread of ${t.tgid}`} ${t.tid} ${JSON.stringify(names.join('→'))} start ${t.startNs}` +
    (t.exitNs !== null ? ` exit ${t.exitNs}` : '') +
    ` release [${t.release.loNs}, ${t.release.hiNs}]`
  );
}

/** A 15-character comm as the 16 bytes the kernel stores. */
function commBytes(comm: string): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.write(comm.slice(0, 15), 'latin1');
  return bytes;
}

/** What a reader copying word by word sees while `from` is overwritten by `to`. */
function tornMixes(from: string, to: string): string[] {
  const a = commBytes(from);
  const b = commBytes(to);
  const decode = (x: Buffer) => {
    const end = x.indexOf(0);
    return x.subarray(0, end < 0 ? 16 : end).toString('latin1');
  };
  return [decode(Buffer.concat([a.subarray(0, 8), b.subarray(8)])), decode(Buffer.concat([b.subarray(0, 8), a.subarray(8)]))];
}

/** Whether `comm` is what a read of T's comm inside [w0, w1] can return. */
export function commSeenInWindow(task: RecordedTask, comm: string, w0: bigint, w1: bigint): boolean {
  // Spans are in time order; a busy renamer has tens of thousands. Walk back
  // from the last one set by w1, to a second before w0 (slack for renames by
  // other tasks, whose copies may finish out of order).
  const spans = task.comms;
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (spans[mid]!.fromNs <= w1) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo - 1; i >= 0; i--) {
    const span = spans[i]!;
    if (span.untilNs !== null && span.untilNs < w0 - 1_000_000_000n) break;
    const visible = span.fromNs <= w1 && (span.untilNs === null || span.untilNs >= w0);
    if (visible && span.comm === comm) return true;
    if (span.nextComm !== undefined && span.nextFromNs !== undefined) {
      const copying = span.nextFromNs <= w1 && (span.untilNs === null || span.untilNs >= w0);
      if (copying && tornMixes(span.comm, span.nextComm).includes(comm)) return true;
    }
  }
  return false;
}

interface EntryView {
  what: 'process' | 'thread';
  /** Process (tgid) the entry is in. */
  pid: number;
  /** The number the entry names: pid for a process, tid for a thread. */
  nr: number;
  comm: string;
  startNs: bigint;
  /** 'exact': start_boottime; 'ticks': /proc's; 'either': a thread entry, whose precision is not recorded. */
  precision: 'exact' | 'ticks' | 'either';
  ino?: bigint;
  ppid?: number;
  state: string;
}

function where(view: EntryView): string {
  return view.what === 'process' ? `process ${view.pid}` : `thread ${view.nr} of process ${view.pid}`;
}

function startFits(task: RecordedTask, view: EntryView): boolean {
  if (view.precision === 'exact') return view.startNs === task.startNs;
  if (view.precision === 'ticks') return view.startNs === floorTick(task.startNs);
  return view.startNs === task.startNs || view.startNs === floorTick(task.startNs);
}

interface Context {
  log: RecorderLog;
  w0: bigint;
  w1: bigint;
  reusedBy: Map<number, ReusedPid[]>;
  tasksByKey: Map<string, RecordedTask>;
  result: ExactCheck;
}

const violation = (category: Category, view: EntryView, message: string): ExactViolation => ({
  category,
  pid: view.pid,
  ...(view.what === 'thread' ? { tid: view.nr } : {}),
  message: `${where(view)} comm=${JSON.stringify(view.comm)} startNs=${view.startNs}${view.precision === 'ticks' ? ' (ticks)' : ''}: ${message}`,
});

/** Which task an entry's facts come from, or why none (identity). */
function resolve(view: EntryView, ctx: Context): { task: RecordedTask; problems: ExactViolation[] } | { problems: ExactViolation[] } {
  const { w0, w1 } = ctx;
  const holders = ctx.log.byNumber.get(view.nr) ?? [];
  const inGroup = (t: RecordedTask) => (view.what === 'process' ? t.leader : t.tgid === view.pid);
  const last = view.precision === 'exact' ? view.startNs : view.startNs + TICK_NS - 1n;
  const fits = startedIn(holders, view.startNs, last).filter(
    (t) => inGroup(t) && startFits(t, view) && (view.ino === undefined || t.ino === 0n || t.ino === view.ino),
  );
  if (fits.length === 0) {
    const parts: string[] = [];
    if (holders.length === 0) parts.push(`the recorder saw no task numbered ${view.nr}`);
    for (const t of holders) {
      if (!startFits(t, view)) continue;
      if (!inGroup(t)) parts.push(`start fits a task in another thread group: ${describeTask(t)}`);
      else parts.push(`start fits, pidfs inode differs (${view.ino} vs ${t.ino}): ${describeTask(t)}`);
    }
    if (parts.length === 0) parts.push(`no task numbered ${view.nr} started then (holders: ${holders.map((t) => t.startNs).join(', ')})`);
    return { problems: [violation('identity', view, parts.join('; '))] };
  }
  if (fits.every((t) => t.startNs > w1)) {
    return { problems: [violation('identity', view, `the task started after the window end: ${fits.map(describeTask).join('; ')}`)] };
  }
  const named = fits.filter((t) => commSeenInWindow(t, view.comm, w0, w1));
  if (named.length === 0) {
    return {
      problems: [
        violation(
          'identity',
          view,
          `comm is none T had during the window: ${fits.map((t) => `${describeTask(t)} comms ${JSON.stringify(t.comms.map((c) => c.comm))}`).join('; ')}`,
        ),
      ],
    };
  }
  if (named.length > 1) ctx.result.ties++;
  // Judge a tie by the candidate with the fewest problems (every one is a
  // task these facts fit; the snapshot cannot be blamed for the tie).
  let best: { task: RecordedTask; problems: ExactViolation[] } | undefined;
  for (const task of named) {
    const problems = factProblems(view, task, ctx);
    if (!best || problems.length < best.problems.length) best = { task, problems };
  }
  return best!;
}

/** Identity and stale problems of an entry that names `task`. */
function factProblems(view: EntryView, task: RecordedTask, ctx: Context): ExactViolation[] {
  const { w0, w1 } = ctx;
  const problems: ExactViolation[] = [];
  if (task.startNs > w1) problems.push(violation('identity', view, `the task started after the window end: ${describeTask(task)}`));
  if (task.release.hiNs < w0) {
    const by = task.successor && task.successor.startNs < w0 ? `, and ${describeTask(task.successor)} took the number` : '';
    problems.push(violation('stale', view, `the task was released before the window [${w0}, ${w1}]: ${describeTask(task)}${by}`));
  }
  if (view.ppid !== undefined) {
    const parent = task.ppid === 0 ? undefined : ctx.tasksByKey.get(`${task.parentStartNs}`);
    const parentStayed = task.ppid === 0 || (parent !== undefined && (parent.exitNs === null || parent.exitNs > w1));
    if (parentStayed && view.ppid !== task.ppid) {
      problems.push(violation('identity', view, `ppid ${view.ppid}, but the task's parent ${task.ppid} lived through the window: ${describeTask(task)}`));
    }
  }
  if ((view.state === 'Z' || view.state === 'X') && (task.exitNs === null || task.exitNs > w1)) {
    problems.push(violation('identity', view, `state ${view.state}, but the task had not exited by the window end: ${describeTask(task)}`));
  }
  // Stale at the end: the number changed hands inside the window, unlisted.
  const successor = task.successor;
  if (successor && successor.startNs > w0 && successor.startNs <= w1) {
    const listed = ctx.reusedBy.get(view.nr) ?? [];
    if (!listed.some((r) => abs(r.atNs - successor.startNs) <= AT_NS_TOLERANCE_NS)) {
      problems.push(
        violation(
          'stale',
          view,
          `listed as the task it was, but ${describeTask(successor)} took number ${view.nr} ${us(w1 - successor.startNs)} before the window end ` +
            `and reused ${listed.length ? `lists only ${listed.map((r) => r.atNs).join(', ')}` : 'does not list it'}; the old task: ${describeTask(task)}`,
        ),
      );
    }
  }
  return problems;
}

function processView(p: ProcessEntry): EntryView {
  return {
    what: 'process',
    pid: p.pid,
    nr: p.pid,
    comm: p.comm,
    startNs: p.startNs,
    precision: p.startExact ? 'exact' : 'ticks',
    ...(p.pidfdIno !== undefined ? { ino: p.pidfdIno } : {}),
    ppid: p.ppid,
    state: p.state,
  };
}

function threadView(p: ProcessEntry, t: ThreadEntry): EntryView {
  return { what: 'thread', pid: p.pid, nr: t.tid, comm: t.comm, startNs: t.startNs, precision: 'either', state: t.state };
}

/**
 * The snapshot's tasks that exited inside the window, if it carries them:
 * schema 2, with the bpf guard (nothing else logs exits, and `exited` is
 * then empty by design).
 */
export function timelineOf(snapshot: Snapshot): TimelineItem[] | undefined {
  if (snapshot.guard.kind !== 'bpf') return undefined;
  return snapshot.exited?.map((item) => ({ pid: item.pid, tid: item.tid, comm: item.comm, startNs: item.startNs, exitNs: item.exitNs }));
}

/** Index of the last holder with startNs <= t, or -1. */
function lastStartedBy(holders: readonly RecordedTask[], t: bigint): number {
  let lo = 0;
  let hi = holders.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (holders[mid]!.startNs <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Holders with from <= startNs <= to. */
function startedIn(holders: readonly RecordedTask[], from: bigint, to: bigint): RecordedTask[] {
  const out: RecordedTask[] = [];
  for (let i = lastStartedBy(holders, from - 1n) + 1; i < holders.length && holders[i]!.startNs <= to; i++) out.push(holders[i]!);
  return out;
}

/** Every rule above, for one snapshot. */
export function checkAgainstRecorder(snapshot: Snapshot, log: RecorderLog, options: ExactCheckOptions = {}): ExactCheck {
  if (snapshot.pidNamespace.inum !== log.summary.inum) {
    throw new Error(`the snapshot is of PID namespace ${snapshot.pidNamespace.inum}, the recorder logged ${log.summary.inum}`);
  }
  const w0 = snapshot.window.startNs;
  const w1 = snapshot.window.endNs;
  const result: ExactCheck = {
    violations: [],
    judged: 0,
    handOvers: 0,
    required: 0,
    releasingAtEnd: 0,
    ties: 0,
    timeline: 'absent',
    timelineItems: 0,
  };
  const reusedBy = new Map<number, ReusedPid[]>();
  for (const r of snapshot.reused) {
    let list = reusedBy.get(r.pid);
    if (!list) reusedBy.set(r.pid, (list = []));
    list.push(r);
  }
  const ctx: Context = { log, w0, w1, reusedBy, tasksByKey: parentIndex(log), result };

  // identity and stale, entry by entry; which task each entry is.
  const processTask = new Map<number, RecordedTask | null>();
  const threadTask = new Map<string, RecordedTask | null>();
  const numbers = new Set<number>();
  for (const p of snapshot.processes) {
    // A main-thread entry that repeats its process's facts is judged once, as the process.
    const threads = p.threads.filter((t) => !(t.tid === p.pid && t.comm === p.comm && t.startNs === p.startNs));
    const views = [processView(p), ...threads.map((t) => threadView(p, t))];
    for (const view of views) {
      numbers.add(view.nr);
      result.judged++;
      const resolved = resolve(view, ctx);
      result.violations.push(...resolved.problems);
      const task = 'task' in resolved ? resolved.task : null;
      if (view.what === 'process') processTask.set(p.pid, task);
      else threadTask.set(`${p.pid}/${view.nr}`, task);
    }
  }

  // reuse: every hand-over inside the window of every number in the snapshot.
  for (const nr of new Set([...numbers, ...reusedBy.keys()])) {
    const holders = log.byNumber.get(nr) ?? [];
    const listed = reusedBy.get(nr) ?? [];
    const inWindow = startedIn(holders, w0 + 1n, w1);
    const inSnapshot = numbers.has(nr);
    if (inSnapshot) {
      for (const s of inWindow) {
        result.handOvers++;
        if (listed.some((r) => abs(r.atNs - s.startNs) <= AT_NS_TOLERANCE_NS)) continue;
        result.violations.push({
          category: 'reuse',
          pid: nr,
          message:
            `number ${nr} changed hands inside the window [${w0}, ${w1}] at ${s.startNs} (${us(s.startNs - w0)} after its start) to ${describeTask(s)}; ` +
            (listed.length ? `reused lists ${nr} only at ${listed.map((r) => r.atNs).join(', ')}` : `reused does not list ${nr}`) +
            ` (${inWindow.length} hand-over${inWindow.length === 1 ? '' : 's'} of ${nr} in the window)`,
        });
      }
    }
    for (const r of listed) {
      if (startedIn(holders, r.atNs - AT_NS_TOLERANCE_NS, r.atNs + AT_NS_TOLERANCE_NS).length > 0) continue;
      result.violations.push({
        category: 'reuse',
        pid: nr,
        message: `reused lists ${nr} at ${r.atNs}, but no task took ${nr} then (its holders started at ${holders.map((t) => t.startNs).join(', ') || 'never'})`,
      });
    }
    for (let i = 1; i < listed.length; i++) {
      if (listed[i]!.atNs < listed[i - 1]!.atNs) {
        result.violations.push({
          category: 'reuse',
          pid: nr,
          message: `reused lists ${nr}'s hand-overs out of time order: ${listed.map((r) => r.atNs).join(', ')}`,
        });
        break;
      }
    }
  }

  // completeness: whoever held its number through the window is there.
  const wantThreads = options.threads ?? true;
  for (const holders of log.byNumber.values()) {
    const i = lastStartedBy(holders, w0);
    if (i < 0) continue;
    const task = holders[i]!;
    const key = task.leader ? undefined : `${task.tgid}/${task.tid}`;
    const found = task.leader ? processTask.get(task.tid) : threadTask.get(key!);
    const present = found === task;
    if (task.release.loNs < w1) {
      if (!present && task.release.hiNs >= w1 && (task.leader || wantThreads)) result.releasingAtEnd++;
      continue;
    }
    if (!task.leader && !wantThreads) continue;
    result.required++;
    if (present) continue;
    const what = task.leader ? 'process' : 'thread';
    const entry = task.leader ? snapshot.processes.find((p) => p.pid === task.tid) : undefined;
    result.violations.push({
      category: 'completeness',
      pid: task.tgid,
      ...(task.leader ? {} : { tid: task.tid }),
      message:
        `${what} that held its number for the whole window [${w0}, ${w1}] is missing` +
        (found === undefined
          ? task.leader || processTask.has(task.tgid)
            ? ''
            : ` (no entry for its process ${task.tgid})`
          : ` (the entry with its number does not identify it${entry ? `: comm ${JSON.stringify(entry.comm)} startNs ${entry.startNs}` : ''})`) +
        `: ${describeTask(task)}; its release began ${us(task.release.loNs - w1)} after the window end`,
    });
  }

  // timeline: the tasks that exited inside the window.
  const items = timelineOf(snapshot);
  if (items) {
    result.timeline = 'checked';
    result.timelineItems = items.length;
    const tol = EXIT_NS_TOLERANCE_NS;
    const listed = new Set<RecordedTask>();
    for (const item of items) {
      const holders = log.byNumber.get(item.tid) ?? [];
      const task = holders.find((t) => t.startNs === item.startNs && t.tgid === item.pid);
      const bad = (message: string) =>
        result.violations.push({
          category: 'timeline',
          pid: item.pid,
          tid: item.tid,
          message: `exited item ${item.tid} (process ${item.pid}) ${JSON.stringify(item.comm)} [${item.startNs}, ${item.exitNs}]: ${message}`,
        });
      if (!task) {
        bad(`no task numbered ${item.tid} in process ${item.pid} started then`);
        continue;
      }
      listed.add(task);
      if (task.exitNs === null || item.exitNs < task.exitNs - tol || item.exitNs > maxOf(task.exitNs + tol, task.release.hiNs)) {
        bad(`exitNs is not the task's exit: ${describeTask(task)}`);
      } else if (task.exitNs > w1 + tol || item.exitNs < w0 - tol || item.exitNs > w1 + tol) {
        bad(`the task did not exit inside the window: ${describeTask(task)}`);
      }
      if (!task.comms.some((c) => c.comm === item.comm)) bad(`the task never had this comm: ${describeTask(task)}`);
    }
    const entries = new Set<RecordedTask>();
    for (const t of [...processTask.values(), ...threadTask.values()]) if (t) entries.add(t);
    for (const task of exitedBetween(log, w0 + tol, w1 - tol)) {
      // pidgen's exit stamp is only known to lie between the recorder's and
      // the end of the task's release (see above): if that end is after W1,
      // pidgen may have stamped the exit after the window and left it out.
      if (task.release.hiNs > w1) continue;
      if (listed.has(task) || entries.has(task)) continue;
      if (!task.leader && !wantThreads) continue;
      result.violations.push({
        category: 'timeline',
        pid: task.tgid,
        ...(task.leader ? {} : { tid: task.tid }),
        message: `task exited inside the window [${w0}, ${w1}] and is neither in \`exited\` nor an entry: ${describeTask(task)}`,
      });
    }
  }
  return result;
}

function maxOf(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** Tasks in exit order, so each snapshot finds its window's exits by binary search. */
const exitIndexes = new WeakMap<RecorderLog, RecordedTask[]>();
/** The tasks with from < exitNs <= to. */
function exitedBetween(log: RecorderLog, from: bigint, to: bigint): RecordedTask[] {
  let byExit = exitIndexes.get(log);
  if (!byExit) {
    byExit = log.tasks.filter((t) => t.exitNs !== null).sort((a, b) => (a.exitNs! < b.exitNs! ? -1 : a.exitNs! > b.exitNs! ? 1 : 0));
    exitIndexes.set(log, byExit);
  }
  let lo = 0;
  let hi = byExit.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (byExit[mid]!.exitNs! <= from) lo = mid + 1;
    else hi = mid;
  }
  const out: RecordedTask[] = [];
  for (let i = lo; i < byExit.length && byExit[i]!.exitNs! <= to; i++) out.push(byExit[i]!);
  return out;
}

/** Tasks by start time, to find a task's real parent (NEW carries the parent's start). */
const parentIndexes = new WeakMap<RecorderLog, Map<string, RecordedTask>>();
function parentIndex(log: RecorderLog): Map<string, RecordedTask> {
  let index = parentIndexes.get(log);
  if (!index) {
    index = new Map();
    for (const t of log.tasks) index.set(`${t.startNs}`, t);
    parentIndexes.set(log, index);
  }
  return index;
}
