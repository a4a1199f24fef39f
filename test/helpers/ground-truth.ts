// Ground truth for pidgen's coherence claim, from the churner's own log
// (test/helpers/churner.c) and nothing of pidgen's code.
//
// The churner logs every task it made with CLOCK_BOOTTIME bounds:
//   kind pid tgid name fork_before fork_after reap_before reap_after
// The kernel allocates a task's PID and sets its start_boottime between
// fork_before and fork_after (inside fork()/pthread_create()), and frees the
// PID between reap_before and reap_after (inside the waitpid() that returned
// it; for a thread, after its process was SIGKILLed and before the process
// was reaped). So a logged task
//   - surely held its PID during [fork_after, reap_before];
//   - surely did not hold it before fork_before or after reap_after;
//   - in between, it is ambiguous, and the checker never counts an
//     ambiguous case as a violation.
// How narrow those bounds are (`boundStats` measures them for a given log):
// on the development machine (2 cores, churning flat out) fork bounds are
// ~80-180 us wide at the median, ~1.5 ms at p99 and a few ms at worst (the
// forker was preempted); reap bounds ~6 us at the median, ~0.2 ms at p99.
// Only tasks whose fork or reap falls within that distance of a window edge
// are ambiguous; `checkSnapshotDetailed` counts them.
// Two looser bounds, both sound: a thread that comes and goes (the churner's
// threadchurn= option) frees its TID itself on exit, and pthread_join()
// returns before the kernel frees it, so its reap_after is when its whole
// process was reaped; and a task named "-" renames itself all the time, so
// its name is not compared.
// Not decidable from userspace at all: a fork in flight at the window end
// may have taken its number just before the end; its fork_after is after the
// end, so the checker treats it as ambiguous.
//
// DESIGN.md's "coherent means all of these", as checked here:
//   P1 every entry's facts come from the one task named by (pid, startNs):
//      an entry (process, or thread) whose PID the log knows must match one
//      logged task with that PID by name (the churner's names are unique per
//      task; "-" matches any), by start time (inside its fork bounds; for /proc's clock ticks,
//      startExact false, the lower bound is rounded down to 10 ms), by thread
//      group, and that task must not be surely dead before the window or
//      surely unborn after it.
//   P2 every PID in the snapshot named that task throughout the window, but
//      for those in `reused`: any other logged task that surely held the same
//      PID at some instant of the window (fork_after < window.end and
//      reap_before > window.start) is a reuse inside the window, which
//      `reused` must list with atNs inside the fork bounds of the newer of
//      the two tasks (the moment the PID changed hands).
//   P3 every task alive for the whole window is in the snapshot: a logged
//      task with fork_after <= window.start and reap_before >= window.end
//      must appear with its PID (a process entry; a thread as a thread of its
//      process entry). "Alive" here means holding its PID, which includes
//      being a zombie; the log does not say when a child exited.
import type { ProcessEntry, Snapshot, ThreadEntry } from '../../src/index.js';

export type TaskKind = 'child' | 'long' | 'thread';

export interface LoggedTask {
  kind: TaskKind;
  pid: number;
  tgid: number;
  name: string;
  forkBeforeNs: bigint;
  forkAfterNs: bigint;
  /** null: never reaped while the churner logged (treated as alive forever). */
  reapBeforeNs: bigint | null;
  reapAfterNs: bigint | null;
  /** 1-based line in the log, for messages. */
  line: number;
}

export interface ChurnTruth {
  tasks: LoggedTask[];
  /** Logged tasks by PID (tid for threads), by fork_before. */
  byPid: Map<number, LoggedTask[]>;
  /** From the log's `# churner pid=...` comment, when present. */
  churnerPid?: number;
  /** From the log's `# churn start_ns=...` comment: the hot loop. */
  churn?: { startNs: bigint; endNs: bigint; forks: number; wraps: number };
}

export type Property = 'P1' | 'P2' | 'P3';

export interface Violation {
  property: Property;
  pid: number;
  /** Set for a thread entry or a logged thread. */
  tid?: number;
  message: string;
}

/** What a check found, and how much it could judge. */
export interface CheckResult {
  violations: Violation[];
  /** Entries (processes, and threads other than a repeated main thread) whose PID the log knows. */
  judged: number;
  /** P2: other holders of a judged PID inside the window that `reused` excused. */
  excused: number;
  /** P3: logged tasks that surely lived through the window (each had to be there). */
  required: number;
  /**
   * Cases the bounds cannot decide, counted and not held against the
   * snapshot: P2, another holder that may have held the PID inside the
   * window (its fork or reap straddles an edge) and is not in `reused`; P3,
   * a missing task that may have lived through the window. Tasks with reap
   * bounds wider than 50 ms (churned threads) are not counted.
   */
  ambiguous: { P2: number; P3: number };
}

export interface CheckOptions {
  /** Whether the snapshot was taken with threads (P3 then wants threads). Default true. */
  threads?: boolean;
  /**
   * Judge only entries whose comm matches (default: all whose PID the log
   * knows). Where other programs share the namespace (a CLI, a thread pool),
   * their tasks take numbers the log also knows, and only the churner's own
   * names say an entry is one of its tasks.
   */
  names?: RegExp;
}

/** Every name the churner gives its tasks (see churner.c). */
export const CHURNER_NAMES = /^(c[0-9a-f]+|L[0-9a-f]+|T[0-9a-f]+_[0-9a-f]+|t[0-9a-f]+_[0-9a-f]+|TC[0-9a-f]+)$/;

const TICK_NS = 10_000_000n; // USER_HZ = 100

/** A logged name that matches any comm: the task renames itself all the time. */
export const ANY_NAME = '-';

export function parseChurnLog(text: string): ChurnTruth {
  const tasks: LoggedTask[] = [];
  const byPid = new Map<number, LoggedTask[]>();
  const truth: ChurnTruth = { tasks, byPid };
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    if (line.startsWith('#')) {
      const churner = /^# churner pid=(\d+)/.exec(line);
      if (churner) truth.churnerPid = Number(churner[1]);
      const churn = /^# churn start_ns=(\d+) end_ns=(\d+) forks=(\d+) wraps=(\d+)/.exec(line);
      if (churn) {
        truth.churn = {
          startNs: BigInt(churn[1]!),
          endNs: BigInt(churn[2]!),
          forks: Number(churn[3]),
          wraps: Number(churn[4]),
        };
      }
      return;
    }
    const f = line.split(' ');
    if (f.length !== 8) throw new Error(`churn log line ${i + 1}: expected 8 fields, got ${f.length}: ${line}`);
    const [kind, pid, tgid, name, fb, fa, rb, ra] = f as [string, string, string, string, string, string, string, string];
    if (kind !== 'child' && kind !== 'long' && kind !== 'thread') {
      throw new Error(`churn log line ${i + 1}: unknown kind ${kind}`);
    }
    const time = (s: string): bigint | null => (s.startsWith('-') ? null : BigInt(s));
    const task: LoggedTask = {
      kind,
      pid: Number(pid),
      tgid: Number(tgid),
      name,
      forkBeforeNs: BigInt(fb),
      forkAfterNs: BigInt(fa),
      reapBeforeNs: time(rb),
      reapAfterNs: time(ra),
      line: i + 1,
    };
    if (!(task.forkBeforeNs <= task.forkAfterNs)) throw new Error(`churn log line ${i + 1}: fork bounds reversed`);
    tasks.push(task);
    let list = byPid.get(task.pid);
    if (!list) byPid.set(task.pid, (list = []));
    list.push(task);
  });
  for (const list of byPid.values()) list.sort((a, b) => (a.forkBeforeNs < b.forkBeforeNs ? -1 : a.forkBeforeNs > b.forkBeforeNs ? 1 : 0));
  return truth;
}

/**
 * Which logged tasks may hold which number when: each task is filed under
 * every BUCKET_NS slice of time from its fork_before to the end of its reap
 * bounds (for a task with loose reap bounds, a churned thread, to
 * reap_before + LOOSE_REAP_NS: every rule reads only reap_before of those; a
 * task never reaped, to the end of the log). A query returns every task whose
 * span meets the asked interval, and a few more; the rules then decide.
 */
const BUCKET_NS = 100_000_000n;

class HolderIndex {
  #byPid = new Map<number, Map<number, LoggedTask[]>>();
  #all = new Map<number, LoggedTask[]>();

  constructor(tasks: readonly LoggedTask[]) {
    let lastNs = 0n;
    for (const t of tasks) {
      for (const v of [t.forkAfterNs, t.reapAfterNs ?? 0n]) if (v > lastNs) lastNs = v;
    }
    for (const t of tasks) {
      const end = t.reapAfterNs === null ? lastNs : looseReap(t) ? t.reapBeforeNs! + LOOSE_REAP_NS : t.reapAfterNs;
      let buckets = this.#byPid.get(t.pid);
      if (!buckets) this.#byPid.set(t.pid, (buckets = new Map()));
      for (let b = Number(t.forkBeforeNs / BUCKET_NS); b <= Number(end / BUCKET_NS); b++) {
        for (const map of [buckets, this.#all]) {
          let list = map.get(b);
          if (!list) map.set(b, (list = []));
          list.push(t);
        }
      }
    }
  }

  /** Tasks with this number whose span meets [fromNs, toNs]; all numbers if pid is undefined. */
  holders(pid: number | undefined, fromNs: bigint, toNs: bigint): Set<LoggedTask> {
    const buckets = pid === undefined ? this.#all : this.#byPid.get(pid);
    const out = new Set<LoggedTask>();
    if (!buckets) return out;
    for (let b = Number(fromNs / BUCKET_NS); b <= Number(toNs / BUCKET_NS); b++) for (const t of buckets.get(b) ?? []) out.add(t);
    return out;
  }
}

const indexes = new WeakMap<ChurnTruth, HolderIndex>();
function holderIndex(truth: ChurnTruth): HolderIndex {
  let index = indexes.get(truth);
  if (!index) indexes.set(truth, (index = new HolderIndex(truth.tasks)));
  return index;
}

const floorTick = (ns: bigint): bigint => (ns / TICK_NS) * TICK_NS;

/** Whether `startNs` can be `task`'s start_boottime as pidgen reports it. */
function startFits(task: LoggedTask, startNs: bigint, exact: boolean): boolean {
  const low = exact ? task.forkBeforeNs : floorTick(task.forkBeforeNs);
  return startNs >= low && startNs <= task.forkAfterNs;
}

const fmtTask = (t: LoggedTask): string =>
  `${t.kind} ${t.name} pid ${t.pid} tgid ${t.tgid} fork [${t.forkBeforeNs}, ${t.forkAfterNs}] reap [${t.reapBeforeNs ?? '-'}, ${t.reapAfterNs ?? '-'}] (log line ${t.line})`;

/** Surely held its PID at some instant inside [startNs, endNs]. */
function surelyOverlaps(task: LoggedTask, startNs: bigint, endNs: bigint): boolean {
  return task.forkAfterNs < endNs && (task.reapBeforeNs === null || task.reapBeforeNs > startNs);
}

/** Surely held its PID during all of [startNs, endNs]. */
function surelyThroughout(task: LoggedTask, startNs: bigint, endNs: bigint): boolean {
  return task.forkAfterNs <= startNs && (task.reapBeforeNs === null || task.reapBeforeNs >= endNs);
}

/**
 * Reap bounds wider than this are not timing but "some time before the end"
 * (a churned thread's, see above): such tasks are left out of the ambiguity
 * counts, which would otherwise count them in every window.
 */
const LOOSE_REAP_NS = 50_000_000n;
const looseReap = (task: LoggedTask): boolean =>
  task.reapBeforeNs !== null && task.reapAfterNs !== null && task.reapAfterNs - task.reapBeforeNs > LOOSE_REAP_NS;

/** May have held its PID at some instant inside [startNs, endNs] (for the ambiguity count). */
function maybeOverlaps(task: LoggedTask, startNs: bigint, endNs: bigint): boolean {
  if (looseReap(task)) return false;
  return task.forkBeforeNs < endNs && (task.reapAfterNs === null || task.reapAfterNs > startNs);
}

/** May have held its PID during all of [startNs, endNs] (for the ambiguity count). */
function maybeThroughout(task: LoggedTask, startNs: bigint, endNs: bigint): boolean {
  if (looseReap(task)) return false;
  return task.forkBeforeNs <= startNs && (task.reapAfterNs === null || task.reapAfterNs >= endNs);
}

interface EntryView {
  what: 'process' | 'thread';
  pid: number; // process pid (tgid)
  id: number; // pid for a process, tid for a thread
  comm: string;
  startNs: bigint;
  exact: boolean;
}

/**
 * Which logged task an entry's facts come from (P1), or a violation. Returns
 * undefined when the log knows nothing of the entry's PID.
 */
function matchEntry(
  entry: EntryView,
  truth: ChurnTruth,
  window: Snapshot['window'],
): { task: LoggedTask } | { violation: Violation } | undefined {
  const candidates = truth.byPid.get(entry.id);
  if (!candidates) return undefined;
  const where = entry.what === 'process' ? `process ${entry.pid}` : `thread ${entry.id} of process ${entry.pid}`;
  const violation = (message: string): { violation: Violation } => ({
    violation: {
      property: 'P1',
      pid: entry.pid,
      ...(entry.what === 'thread' ? { tid: entry.id } : {}),
      message: `mixed or stale facts: ${where} comm=${JSON.stringify(entry.comm)} startNs=${entry.startNs}${entry.exact ? '' : ' (ticks)'}: ${message}`,
    },
  });
  const sameGroup = (t: LoggedTask): boolean =>
    entry.what === 'process' ? t.pid === t.tgid : t.tgid === entry.pid;
  const fits = (t: LoggedTask): boolean =>
    (t.name === entry.comm || t.name === ANY_NAME) && sameGroup(t) && startFits(t, entry.startNs, entry.exact);
  // The tasks whose fork bounds can hold startNs (a tick rounds down by less
  // than 10 ms; no fork takes a second) first; every task only to explain a miss.
  let match: LoggedTask | undefined;
  for (const t of holderIndex(truth).holders(entry.id, entry.startNs, entry.startNs + TICK_NS)) {
    if (fits(t)) {
      match = t;
      break;
    }
  }
  const named = match ? [] : candidates.filter((t) => t.name === entry.comm || t.name === ANY_NAME);
  if (!match) {
    const byStart = candidates.filter((t) => startFits(t, entry.startNs, entry.exact));
    const parts: string[] = [];
    if (named.length === 0) parts.push('no logged task with this PID has this name');
    for (const t of named) {
      parts.push(
        sameGroup(t)
          ? `startNs is outside the fork bounds of the task with this name: ${fmtTask(t)}`
          : `the task with this name is in another thread group: ${fmtTask(t)}`,
      );
    }
    for (const t of byStart) if (!named.includes(t)) parts.push(`startNs fits another task: ${fmtTask(t)}`);
    return violation(parts.join('; '));
  }
  if (match.forkBeforeNs > window.endNs) return violation(`the task was born after the window: ${fmtTask(match)}`);
  if (match.reapAfterNs !== null && match.reapAfterNs < window.startNs) {
    return violation(`the task's PID was freed before the window: ${fmtTask(match)}`);
  }
  return { task: match };
}

/**
 * The coherence properties of DESIGN.md, checked against the churner's log.
 * Entries whose PID the log never saw (the namespace's init, the churner,
 * anything else not made by the churner) are not judged.
 */
export function checkSnapshot(snapshot: Snapshot, truth: ChurnTruth, options: CheckOptions = {}): Violation[] {
  return checkSnapshotDetailed(snapshot, truth, options).violations;
}

/** {@link checkSnapshot}, plus how much of the snapshot the log could judge. */
export function checkSnapshotDetailed(snapshot: Snapshot, truth: ChurnTruth, options: CheckOptions = {}): CheckResult {
  const { window } = snapshot;
  const violations: Violation[] = [];
  const result: CheckResult = { violations, judged: 0, excused: 0, required: 0, ambiguous: { P2: 0, P3: 0 } };
  const views: EntryView[] = [];
  for (const p of snapshot.processes) {
    views.push({ what: 'process', pid: p.pid, id: p.pid, comm: p.comm, startNs: p.startNs, exact: p.startExact });
    for (const t of p.threads) {
      // The main thread's entry repeats its process's facts: judge them once.
      if (t.tid === p.pid && t.comm === p.comm && t.startNs === p.startNs) continue;
      views.push(threadView(p, t));
    }
  }

  for (const view of views) {
    if (options.names && !options.names.test(view.comm)) continue;
    const match = matchEntry(view, truth, window);
    if (!match) continue;
    result.judged++;
    if ('violation' in match) {
      violations.push(match.violation);
      continue;
    }
    // A thread entry for the main thread repeats its process; judge P2 once.
    if (view.what === 'thread' && view.id === view.pid) continue;
    const task = match.task;
    // P2: nobody else held this PID inside the window, unless listed in reused.
    for (const other of holderIndex(truth).holders(view.id, window.startNs, window.endNs)) {
      if (other === task) continue;
      const newer = other.forkAfterNs > task.forkAfterNs ? other : task;
      const listed = snapshot.reused.filter((r) => r.pid === view.id);
      const excused = listed.some((r) => r.atNs >= newer.forkBeforeNs && r.atNs <= newer.forkAfterNs);
      if (!surelyOverlaps(other, window.startNs, window.endNs)) {
        if (!excused && maybeOverlaps(other, window.startNs, window.endNs)) result.ambiguous.P2++;
        continue;
      }
      if (excused) {
        result.excused++;
        continue;
      }
      const where = view.what === 'process' ? `PID ${view.id}` : `TID ${view.id} (thread of ${view.pid})`;
      violations.push({
        property: 'P2',
        pid: view.pid,
        ...(view.what === 'thread' ? { tid: view.id } : {}),
        message:
          `${where} is reported as ${task.name} but named another task inside the window [${window.startNs}, ${window.endNs}]: ` +
          `${fmtTask(other)}; the PID changed hands when ${newer.name} was forked, in [${newer.forkBeforeNs}, ${newer.forkAfterNs}], ` +
          (listed.length === 0
            ? 'and reused does not list it'
            : `and reused lists it only at ${listed.map((r) => r.atNs).join(', ')}`),
      });
    }
  }

  // P3: every logged task alive for the whole window is there.
  const processes = new Map<number, ProcessEntry>();
  for (const p of snapshot.processes) processes.set(p.pid, p);
  const wantThreads = options.threads ?? true;
  const present = (task: LoggedTask): boolean =>
    task.kind === 'thread'
      ? !wantThreads || (processes.get(task.tgid)?.threads.some((t) => t.tid === task.pid) ?? false)
      : processes.has(task.pid);
  // A task the snapshot reports as exited by the window end was not alive
  // for all of it (a zombie holds its PID, but it is no longer alive): it
  // may be left out. The churner cannot see exits, only reaps, so this
  // checks what it can: the start is the task's, and the exit is before the
  // window end and before the reap. (The BPF recorder checks the exit
  // exactly.) The exit may precede the window start: a zombie the walk saw.
  const exitedInWindow = (task: LoggedTask): boolean =>
    (snapshot.exited ?? []).some(
      (e) =>
        e.tid === task.pid &&
        e.startNs >= task.forkBeforeNs &&
        e.startNs <= task.forkAfterNs &&
        e.exitNs <= window.endNs &&
        (task.reapAfterNs === null || e.exitNs <= task.reapAfterNs),
    );
  // In log order, so violations come out in a stable order.
  const throughCandidates = [...holderIndex(truth).holders(undefined, window.startNs, window.startNs)].sort((a, b) => a.line - b.line);
  for (const task of throughCandidates) {
    if (!surelyThroughout(task, window.startNs, window.endNs)) {
      if (maybeThroughout(task, window.startNs, window.endNs) && !present(task)) result.ambiguous.P3++;
      continue;
    }
    if (task.kind === 'thread' && !wantThreads) continue;
    if (!present(task) && exitedInWindow(task)) continue;
    result.required++;
    if (task.kind === 'thread') {
      const proc = processes.get(task.tgid);
      if (proc?.threads.some((t) => t.tid === task.pid)) continue;
      violations.push({
        property: 'P3',
        pid: task.tgid,
        tid: task.pid,
        message: `thread alive for the whole window is missing${proc ? ' from its process entry' : ' (no entry for its process)'}: ${fmtTask(task)}`,
      });
    } else if (!processes.has(task.pid)) {
      violations.push({
        property: 'P3',
        pid: task.pid,
        message: `process alive (holding its PID, maybe as a zombie) for the whole window [${window.startNs}, ${window.endNs}] is missing: ${fmtTask(task)}`,
      });
    }
  }
  return result;
}

function threadView(p: ProcessEntry, t: ThreadEntry): EntryView {
  // ThreadEntry does not say how its start time was read. A value that is not
  // a whole number of 10 ms ticks cannot have come from /proc's clock ticks,
  // so it is held to the exact bounds; a whole number of ticks gets the
  // rounded-down lower bound (which also contains the exact bounds).
  return {
    what: 'thread',
    pid: p.pid,
    id: t.tid,
    comm: t.comm,
    startNs: t.startNs,
    exact: t.startNs % TICK_NS !== 0n,
  };
}

/** Widths of the log's bounds: how sharply the checker can judge. */
export function boundStats(truth: ChurnTruth): {
  forkWidthNs: { median: bigint; p99: bigint; max: bigint };
  reapWidthNs: { median: bigint; p99: bigint; max: bigint };
} {
  const summarize = (values: bigint[]) => {
    values.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const at = (q: number) => values[Math.min(values.length - 1, Math.floor(q * values.length))] ?? 0n;
    return { median: at(0.5), p99: at(0.99), max: values[values.length - 1] ?? 0n };
  };
  return {
    forkWidthNs: summarize(truth.tasks.map((t) => t.forkAfterNs - t.forkBeforeNs)),
    reapWidthNs: summarize(
      truth.tasks
        .filter((t) => t.kind === 'child' && t.reapBeforeNs !== null && t.reapAfterNs !== null)
        .map((t) => t.reapAfterNs! - t.reapBeforeNs!),
    ),
  };
}

/**
 * A `pidgen.snapshot/1` JSON document back to the in-memory shape the checker
 * reads (decimal strings to bigint), written here rather than taken from
 * pidgen so the truth side does not lean on pidgen's code.
 */
export function reviveSnapshot(json: unknown): Snapshot {
  const s = json as Record<string, any>;
  const big = (v: unknown): bigint => BigInt(v as string);
  return {
    ...(s as Snapshot),
    window: { startNs: big(s.window.startNs), endNs: big(s.window.endNs) },
    guard: {
      ...s.guard,
      ...(s.guard.generationBefore !== undefined ? { generationBefore: big(s.guard.generationBefore) } : {}),
      ...(s.guard.generationAfter !== undefined ? { generationAfter: big(s.guard.generationAfter) } : {}),
    },
    reused: (s.reused as any[]).map((r) => ({ pid: r.pid, atNs: big(r.atNs), ...(r.holder !== undefined ? { holder: r.holder } : {}) })),
    exited: ((s.exited ?? []) as any[]).map((e) => ({ ...e, startNs: big(e.startNs), exitNs: big(e.exitNs) })),
    processes: (s.processes as any[]).map((p) => ({
      ...p,
      startNs: big(p.startNs),
      ...(p.pidfdIno !== undefined ? { pidfdIno: big(p.pidfdIno) } : {}),
      threads: (p.threads as any[]).map((t) => ({ ...t, startNs: big(t.startNs) })),
    })),
    stats: { ...s.stats, durationNs: big(s.stats.durationNs) },
  };
}
