/**
 * The coherence algorithm: a walk bracketed by the guard, in named phases.
 *
 *   walk         one full pass of the source, with the window open
 *   checkpoint   the tracker names the numbers handed out since the last one
 *   suspects     the claims those numbers touch (they may describe the old task)
 *   late records claims on tasks that started after the log was armed but
 *                have no record yet: wait a moment for it, else suspect them
 *   repair       re-read the suspects' processes through the source, or, out
 *                of attempts, drop the suspects
 *   window end   entries whose task exited inside the window are re-read
 *                once more: kept if the number still names that task (a
 *                zombie), dropped if not (verifyExited has the proof)
 *   finish       exact starts, every hand-over, the tasks that exited, the
 *                verdict
 *
 * At each checkpoint the log names exactly the PID numbers handed to a new
 * task since the last one. Only entries those numbers touch are repaired, so
 * each pass reads a few PIDs, not the whole /proc, and it converges even when
 * PIDs wrap faster than a full scan completes; a full rescan happens only
 * when the log lost records.
 *
 * Why the log and not the generation alone: an unchanged generation means
 * no number was allocated twice in the window, but a number from an earlier
 * cycle whose task dies mid-walk can be handed out again without any wrap in
 * the window. The generation is still reported; the decision uses the log.
 *
 * Nothing here touches the kernel or /proc directly: the tracker and the
 * source are seams (window.ts, source/source.ts), so each phase is tested
 * with fakes.
 */
import type { AllocationEvent, ExitEvent } from '../guard/guard.js';
import { decidedByInode, sameTask } from '../model/identity.js';
import { floorToTick, TICK_NS } from '../model/layout.js';
import type { ExitedTask, ProcessEntry, ReusedPid, Snapshot } from '../model/snapshot.js';
import { timed } from '../profile.js';
import type { Source } from '../source/source.js';
import { EntrySet, type Claim } from './entry-set.js';
import type { Checkpoint, WindowTracker } from './window.js';

/**
 * How long the last checkpoint waits for the log record of a task that
 * started inside the window but has not been logged yet. task_newtask fires
 * a few instructions after the task becomes visible in /proc, so a walk can
 * see a task whose record is still on its way.
 */
export const LATE_RECORD_WAIT_MS = 20;

export interface CoherenceSettings {
  /** Passes (the walk plus repairs) before giving up. */
  maxAttempts: number;
}

export interface CoherenceHooks {
  afterFirstWalk?: () => void | Promise<void>;
}

/** What the algorithm concluded about one window: the snapshot's own fields, plus its counters. */
export type WindowOutcome = Pick<Snapshot, 'window' | 'coherent' | 'reason' | 'attempts' | 'reused' | 'exited' | 'processes'> & {
  generationBefore: bigint | undefined;
  generationAfter: bigint | undefined;
  repaired: number;
  fullScans: number;
};

/** The state of one run of the algorithm, across its windows and passes. */
interface Run {
  startNs: bigint;
  endNs: bigint;
  generationBefore: bigint | undefined;
  /**
   * Tasks that started at or after this began after the log was armed, so
   * the log must hold their record: the window start for exact start times,
   * the next whole tick for /proc's tick-precision ones.
   */
  loggedSinceTick: bigint;
  attempts: number;
  fullScans: number;
  repaired: number;
  entries: EntrySet;
  /** Every number taken since the window started: its events in log order. */
  taken: Map<number, AllocationEvent[]>;
  /** Every task of the namespace that exited since the window started, by number. */
  exits: Map<number, ExitEvent[]>;
  waitingSince: number | undefined;
  /**
   * Every number the window's reads saw held, entries dropped since
   * included: a tracker without a log bounds its cursor with them (kept
   * only for such a tracker).
   */
  observed: Set<number> | undefined;
  /** Window ends taken again because a re-read at the end dropped a task. */
  windowEndRounds: number;
}

/**
 * How many times the window end may move on because a task that exited in
 * the window was reaped before its re-read (each time is one more
 * checkpoint). Each round needs a reap within the few hundred microseconds
 * between a checkpoint and its re-read.
 */
export const WINDOW_END_ROUNDS = 8;

type Verdict = { coherent: true } | { coherent: false; reason: string };

export async function walkCoherently(
  tracker: WindowTracker,
  source: Source,
  settings: CoherenceSettings,
  hooks: CoherenceHooks = {},
): Promise<WindowOutcome> {
  const run = openWindow(tracker, source);
  await hooks.afterFirstWalk?.();
  for (;;) {
    const verdict = await pass(run, tracker, source, settings.maxAttempts);
    if (verdict) return finish(run, tracker, verdict);
  }
}

/** Phase walk: open a window and take one full pass inside it. */
function openWindow(tracker: WindowTracker, source: Source, previous?: Run): Run {
  const startNs = timed('guard', () => tracker.start());
  const walked = source.walk();
  const entries = timed('index', () => new EntrySet(walked));
  return {
    startNs,
    endNs: startNs,
    generationBefore: tracker.generation(),
    loggedSinceTick: floorToTick(startNs) + TICK_NS,
    attempts: previous ? previous.attempts + 1 : 1,
    fullScans: previous ? previous.fullScans + 1 : 1,
    repaired: previous?.repaired ?? 0,
    entries,
    observed: tracker.hasLog ? undefined : new Set(entries.numbers()),
    taken: new Map(),
    exits: new Map(),
    waitingSince: undefined,
    windowEndRounds: previous?.windowEndRounds ?? 0,
  };
}

/**
 * One checkpoint and what follows from it. Returns the verdict when the run
 * is over, undefined when another checkpoint must follow.
 */
async function pass(run: Run, tracker: WindowTracker, source: Source, maxAttempts: number): Promise<Verdict | undefined> {
  const checkpoint = timed('guard', () => tracker.checkpoint(source.listsThreads ? run.observed : undefined));
  run.endNs = checkpoint.endNs;
  if (checkpoint.taken === null) return lostTrack(run, tracker, source, checkpoint, maxAttempts);
  recordTaken(run.taken, checkpoint.taken);
  if (checkpoint.exits) recordTaken(run.exits, checkpoint.exits);

  const unverified = unverifiedNumbers(run.entries, checkpoint);
  if (unverified.size > 0) {
    if (run.attempts >= maxAttempts) {
      return { coherent: false, reason: `could not rule out reuse of ${unverified.size} PID(s) without an allocation log; gave up after ${run.attempts} attempts` };
    }
    run.attempts++;
    run.repaired += verifyByRereading(run, unverified, source);
    return undefined;
  }

  const taken = checkpoint.taken;
  const suspects = timed('index', () => findSuspects(run.entries, taken));
  if (suspects.length === 0 && tracker.hasLog) {
    const unlogged = timed('index', () => unloggedClaims(run));
    if (unlogged.length > 0 && (await waitedForLateRecords(run))) return undefined;
    suspects.push(...unlogged);
  }
  if (suspects.length === 0) return windowEnd(run, source);
  if (run.attempts >= maxAttempts) {
    dropSuspects(run, suspects);
    return windowEnd(run, source);
  }
  repair(run, suspects, source);
  return undefined;
}

/**
 * Phase checkpoint, when the tracker cannot say which numbers were taken:
 * only a new full walk, in a new window, can be vouched for.
 */
function lostTrack(run: Run, tracker: WindowTracker, source: Source, checkpoint: Checkpoint, maxAttempts: number): Verdict | undefined {
  const why = checkpoint.reason ?? 'the guard cannot say which PIDs were taken';
  if (!tracker.exact) return { coherent: false, reason: why };
  if (run.attempts >= maxAttempts) return { coherent: false, reason: `${why}; gave up after ${run.attempts} attempts` };
  Object.assign(run, openWindow(tracker, source, run));
  return undefined;
}

function recordTaken<T>(into: Map<number, T[]>, events: ReadonlyMap<number, readonly T[]>): void {
  for (const [nr, forNumber] of events) {
    const all = into.get(nr);
    if (all) all.push(...forNumber);
    else into.set(nr, [...forNumber]);
  }
}

/**
 * Phase suspects: the claims this checkpoint's numbers touch. Unless the
 * entry provably is the new task (a process whose pidfs inode is the latest
 * holder's), it may describe an old holder.
 */
export function findSuspects(entries: EntrySet, taken: ReadonlyMap<number, readonly AllocationEvent[]>): Claim[] {
  const suspects: Claim[] = [];
  for (const [nr, events] of taken) {
    const latest = events[events.length - 1];
    for (const claim of entries.claimsOf(nr)) {
      const owner = entries.processes.get(claim.pid);
      if (claim.nr === claim.pid && latest && latest.ino !== 0n && owner?.pidfdIno === latest.ino) continue;
      suspects.push(claim);
    }
  }
  return suspects;
}

/**
 * Without a log (the cursor guard): the numbers of the walk that may have
 * been handed out. Their entries are re-read and compared, not trusted.
 */
function unverifiedNumbers(entries: EntrySet, checkpoint: Checkpoint): Set<number> {
  const unverified = new Set<number>();
  if (checkpoint.mayBeTaken) {
    for (const nr of entries.numbers()) if (checkpoint.mayBeTaken(nr)) unverified.add(nr);
  }
  return unverified;
}

/**
 * Re-reads the processes holding numbers that may have been handed out,
 * keeps what is provably the same task, started before the window, and
 * drops the rest (it started inside the window or its predecessor died
 * there; neither must be listed, and without a log there is no exact time
 * to list it under `reused`).
 * Returns how many processes were re-read.
 */
function verifyByRereading(run: Run, unverified: Set<number>, source: Source): number {
  const { entries } = run;
  // Not heldThroughWindow: the same pidfs inode on both reads shows one
  // task held the number between them, but without a log a task born in
  // the window cannot be listed as a hand-over, so it must have started
  // before the window.
  const held = (old: TaskSeen, now: TaskSeen) => sameTask(old, now) && old.startNs < floorToTick(run.startNs);
  const owners = new Map<number, ProcessEntry>();
  for (const nr of unverified) {
    for (const claim of entries.claimsOf(nr)) {
      const owner = entries.processes.get(claim.pid);
      if (owner) owners.set(owner.pid, owner);
    }
  }
  const fresh = reread(run, source, [...owners.keys()]);
  for (const [pid, old] of owners) {
    const now = fresh.get(pid);
    if (!now || (unverified.has(pid) && !held(old, now))) {
      entries.remove(pid);
      continue;
    }
    const oldThreads = new Map(old.threads.map((t) => [t.tid, t]));
    now.threads = now.threads.filter((t) => {
      const before = oldThreads.get(t.tid);
      // A thread this re-read sees first may have taken its number in an
      // earlier interval, outside the range verified now, so that range
      // says nothing about it: only a start before the window vouches for
      // it (it held the number all along; the walk raced its listing).
      if (before === undefined) return t.startNs < floorToTick(run.startNs);
      return !unverified.has(t.tid) || held(before, t);
    });
    entries.put(now);
  }
  return owners.size;
}

/** A re-read through the source; every number it shows held joins `observed`. */
function reread(run: Run, source: Source, pids: readonly number[]): Map<number, ProcessEntry> {
  const fresh = source.reread(pids);
  for (const entry of fresh.values()) {
    run.observed?.add(entry.pid);
    for (const thread of entry.threads) run.observed?.add(thread.tid);
  }
  return fresh;
}

/**
 * Phase late records: claims on tasks that started after the log was armed
 * but have no record yet.
 */
export function unloggedClaims(run: Pick<Run, 'entries' | 'startNs' | 'loggedSinceTick' | 'taken'>): Claim[] {
  return run.entries.claimsStartedSince(run.startNs, run.loggedSinceTick, (nr) => run.taken.has(nr));
}

/**
 * Waits a moment for records still on their way (LATE_RECORD_WAIT_MS in
 * all). True: look again at the next checkpoint. False: the wait is over,
 * and the claims never logged are treated as suspects.
 */
async function waitedForLateRecords(run: Run): Promise<boolean> {
  run.waitingSince ??= Date.now();
  if (Date.now() - run.waitingSince >= LATE_RECORD_WAIT_MS) return false;
  await new Promise((resolve) => setTimeout(resolve, 1));
  return true;
}

/**
 * Phase repair: re-read only the processes the suspects belong to, each
 * through a fresh read of one task; the next checkpoint vouches for them.
 */
function repair(run: Run, suspects: readonly Claim[], source: Source): void {
  run.attempts++;
  const owners = new Set(suspects.map((claim) => claim.pid));
  run.repaired += owners.size;
  const fresh = reread(run, source, [...owners]);
  for (const pid of owners) {
    const entry = fresh.get(pid);
    if (entry) run.entries.put(entry);
    else run.entries.remove(pid);
  }
  run.waitingSince = undefined;
}

/**
 * Phase repair, out of attempts: drop what cannot be vouched for. Every
 * suspect's number was handed to a new task inside the window, so the task
 * its claim describes died in the window or started in it, and neither must
 * be in the snapshot. What stays is coherent.
 */
function dropSuspects(run: Run, suspects: readonly Claim[]): void {
  for (const claim of suspects) run.entries.drop(claim);
  run.repaired += suspects.length;
}

/**
 * Phase window end: the verdict, once no claim is suspect. Claims whose
 * task exited are re-read (verifyExited); if one was dropped, the window
 * ends again at a new checkpoint, after that re-read.
 */
function windowEnd(run: Run, source: Source): Verdict | undefined {
  if (timed('index', () => verifyExited(run, source)) === 0) return { coherent: true };
  run.windowEndRounds++;
  if (run.windowEndRounds > WINDOW_END_ROUNDS) {
    return { coherent: false, reason: `tasks that exited kept being reaped at the window end (${WINDOW_END_ROUNDS} more checkpoints)` };
  }
  return undefined;
}

/**
 * Every claim whose task exited inside the window is re-read once more,
 * after the last drain. It stays only if the number still names that task
 * (a zombie holds its PID until it is reaped); otherwise it is dropped, and
 * the window must end again (below). Its old facts are kept, not the fresh
 * read's: the re-read only decides. Returns how many claims were dropped.
 *
 * Why this closes the window end. Say an entry describes task T, read alive
 * by the walk, and its number went to a new task S with S's start before
 * window.endNs. copy_process() sets S's start_boottime, makes S visible,
 * and only then fires task_newtask, so S's record can land after the last
 * drain, and nothing in the snapshot names S to wait for. But S could take
 * the number only after T's PID was freed (release_task(), after T was
 * reaped), and T's exit record was submitted in do_exit() before that
 * (sched_process_exit fires before exit_notify()). The free and the
 * allocation are ordered by pidmap_lock, the allocation comes before S's
 * start, S's start before endNs (one clock, CLOCK_BOOTTIME), and endNs is
 * read before the last drain; the ring's producer position is published
 * with release and read with acquire. So T's exit record is in that drain,
 * and T's claim is re-read here. The re-read happens after endNs: if it
 * still shows T, T held the number from the walk until after endNs, and no
 * hand-over can have happened. If not, T was reaped before the re-read, but
 * maybe after endNs: then T held its number for the whole window (a zombie
 * counts) and must be listed. So T is dropped and the window ends again at
 * a new checkpoint, after the re-read: T was gone before that end, so the
 * rules allow leaving it out, and the new end gets the same proof. Tasks
 * that exited and are not kept are reported in `exited` instead.
 *
 * Cost: one batch read of the few processes whose task exited in the
 * window, and no wait on records that may never come.
 */
function verifyExited(run: Run, source: Source): number {
  const { entries } = run;
  const exitedClaims: Claim[] = [];
  for (const [nr, exits] of run.exits) {
    for (const claim of entries.claimsOf(nr)) {
      if (exits.some((exit) => isExitOfClaim(run, exit, claim))) exitedClaims.push(claim);
    }
  }
  // A task the walk saw as a zombie exited before the log was armed (or
  // before a rescan's window), so its exit is not in the log: the same
  // proof needs its re-read too.
  for (const claim of zombieClaims(entries)) {
    if (!exitedClaims.some((c) => c.nr === claim.nr && c.pid === claim.pid)) exitedClaims.push(claim);
  }
  if (exitedClaims.length === 0) return 0;
  const held = (old: TaskSeen, now: TaskSeen) => heldThroughWindow(run, old, now);
  const owners = [...new Set(exitedClaims.map((c) => c.pid))];
  const fresh = reread(run, source, owners);
  run.repaired += owners.length;
  let dropped = 0;
  for (const claim of exitedClaims) {
    const before = claimedTask(entries, claim);
    const now = claimedTask(fresh.get(claim.pid), claim);
    if (before && now && held(before, now)) continue;
    entries.drop(claim);
    dropped++;
  }
  return dropped;
}

/** Claims on tasks read as zombies (Z) or dead (X). */
function zombieClaims(entries: EntrySet): Claim[] {
  const claims: Claim[] = [];
  const dead = (state: string) => state === 'Z' || state === 'X';
  for (const entry of entries.processes.values()) {
    if (dead(entry.state)) claims.push({ nr: entry.pid, pid: entry.pid });
    for (const thread of entry.threads) if (thread.tid !== entry.pid && dead(thread.state)) claims.push({ nr: thread.tid, pid: entry.pid });
  }
  return claims;
}

interface TaskSeen {
  startNs: bigint;
  pidfdIno?: bigint | undefined;
}

/**
 * A later read of a number shows the task an earlier read saw, so it held the
 * number in between. The pidfs inode decides alone; without it the start
 * tick decides, which a successor cannot share if the first task started
 * before the window's tick (a successor starts inside the window).
 */
function heldThroughWindow(run: Pick<Run, 'startNs'>, old: TaskSeen, now: TaskSeen): boolean {
  return sameTask(old, now) && (decidedByInode(old, now) || old.startNs < floorToTick(run.startNs));
}

/** The task a claim describes: the process for its own pid, else the thread. */
function claimedTask(from: EntrySet | ProcessEntry | undefined, claim: Claim): TaskSeen | undefined {
  const owner = from instanceof EntrySet ? from.processes.get(claim.pid) : from;
  if (!owner) return undefined;
  if (claim.nr === claim.pid) return { startNs: owner.startNs, pidfdIno: owner.pidfdIno };
  const thread = owner.threads.find((t) => t.tid === claim.nr);
  return thread ? { startNs: thread.startNs } : undefined;
}

/**
 * Is this exit record of the task the claim describes? A number handed out
 * inside the window is claimed by its latest holder (every claim it touched
 * was re-read after its record, or is provably that task), whose exact start
 * the log has. A number not handed out kept one task all along the window
 * up to this exit: any exit of that number is that task's.
 */
function isExitOfClaim(run: Pick<Run, 'entries' | 'taken'>, exit: ExitEvent, claim: Claim): boolean {
  const owner = run.entries.processes.get(claim.pid);
  if (claim.nr === claim.pid && exit.ino !== 0n && owner?.pidfdIno !== undefined) return exit.ino === owner.pidfdIno;
  const latest = run.taken.get(claim.nr)?.at(-1);
  return latest === undefined || exit.startNs === latest.startNs;
}

/** Phase finish: exact starts, every hand-over, the tasks that exited, the verdict. */
function finish(run: Run, tracker: WindowTracker, verdict: Verdict): WindowOutcome {
  const processes = [...run.entries.processes.values()].sort((a, b) => a.pid - b.pid);
  for (const process of processes) applyExactStart(process, run.taken.get(process.pid));
  return {
    window: { startNs: run.startNs, endNs: run.endNs },
    generationBefore: run.generationBefore,
    generationAfter: tracker.generation(),
    coherent: verdict.coherent,
    ...(verdict.coherent ? {} : { reason: verdict.reason }),
    attempts: run.attempts,
    reused: tracker.hasLog ? handOvers(run) : [],
    exited: exitedTasks(run),
    processes,
    repaired: run.repaired,
    fullScans: run.fullScans,
  };
}

/**
 * The log's start_boottime is exact where /proc has ticks. Used only when
 * the event provably is this task (same pidfs inode): two tasks can take
 * one number within one 10 ms tick.
 */
function applyExactStart(process: ProcessEntry, events: readonly AllocationEvent[] | undefined): void {
  const event = events?.[events.length - 1];
  if (event?.exactStart && !event.thread && event.ino !== 0n && event.ino === process.pidfdIno) {
    process.startNs = event.startNs;
    process.startExact = true;
    // The main thread is the same task: the same start.
    for (const thread of process.threads) if (thread.tid === process.pid) thread.startNs = event.startNs;
  }
}

/**
 * Every hand-over inside the window of every number in the snapshot, in
 * time order; the latest of each number names the entry that is its new
 * task. A number can change hands several times in one window, and a trace
 * must split it each time.
 */
function handOvers(run: Run): ReusedPid[] {
  const reused: ReusedPid[] = [];
  for (const [nr, events] of run.taken) {
    const claims = run.entries.claimsOf(nr);
    if (claims.length === 0) continue;
    // After a coherent verdict every claim on a taken number is the new
    // task (the others were repaired or dropped), so it is the holder.
    const holder = claims[0]?.pid;
    events.forEach((event, i) => {
      const latest = i === events.length - 1;
      reused.push({
        pid: nr,
        atNs: event.startNs,
        ...(latest && holder !== undefined ? { holder } : {}),
        ...(event.creatorTid ? { creator: { pid: event.creatorTgid || event.creatorTid, tid: event.creatorTid } } : {}),
      });
    });
  }
  return reused.sort((a, b) => (a.atNs < b.atNs ? -1 : a.atNs > b.atNs ? 1 : a.pid - b.pid));
}

/**
 * Tasks that exited inside the window and are not in the snapshot: they
 * came and went inside it, or died in it and were dropped. A trace that
 * starts at the baseline learns of them only here.
 */
function exitedTasks(run: Run): ExitedTask[] {
  const exited: ExitedTask[] = [];
  for (const [nr, exits] of run.exits) {
    const kept = run.entries.claimsOf(nr);
    for (const exit of exits) {
      // The first drain can hold exits from just before the window (the
      // log is armed first); those tasks are not the window's news.
      if (exit.atNs < run.startNs) continue;
      if (kept.some((claim) => isExitOfClaim(run, exit, claim))) continue;
      exited.push({ pid: exit.tgid || nr, tid: nr, comm: exit.comm, startNs: exit.startNs, exitNs: exit.atNs });
    }
  }
  return exited.sort((a, b) => (a.exitNs < b.exitNs ? -1 : a.exitNs > b.exitNs ? 1 : a.tid - b.tid));
}
