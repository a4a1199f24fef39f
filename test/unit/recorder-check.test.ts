// The exact checker and the recorder log reader, on small hand-built logs
// (the records the BPF side writes, encoded here) and snapshots: every rule
// must catch its violation, stay quiet on the clean case, and decide the edge
// cases (a PID handed over twice in one window, a hand-over just before the
// window end, a task being released as the window closes).
import { describe, expect, it } from 'vitest';
import type { ProcessEntry, ReusedPid, Snapshot, ThreadEntry } from '../../src/index.js';
import { parseChurnLog } from '../helpers/ground-truth.js';
import { AT_NS_TOLERANCE_NS, checkAgainstRecorder, commSeenInWindow, type Category } from '../recorder/check.js';
import { buildLog, encodeEvents, EVENT_KINDS, type RawEvent, type RecordedTask, type RecorderLog, type RecorderSummary } from '../recorder/log.js';
import { compareTasks, unconfirmed } from '../recorder/views.js';

// Times in ms from an arbitrary boot offset, written out in ns.
const BASE = 5_000_000_000_000n;
const ms = (x: number): bigint => BASE + BigInt(Math.round(x * 1_000_000));
const INUM = 4026532000;
const W0 = 100;
const W1 = 110;

/** A pidfs inode per task, as the kernel gives one per struct pid. */
const inoOf = (tid: number, start: number): bigint => BigInt(tid * 1_000_000 + Math.round(start * 100));

interface Born {
  tid: number;
  tgid: number;
  start: number;
}

/** A recorder log written the way recorder.bpf.c writes it. */
class LogBuilder {
  events: Partial<RawEvent>[] = [];

  born(tid: number, tgid: number, comm: string, start: number, by?: Born, ino = 0n): Born {
    this.events.push({
      kind: EVENT_KINDS.NEW,
      timeNs: ms(start) + 5_000n,
      startNs: ms(start),
      ino: ino || inoOf(tid, start),
      tid,
      tgid,
      comm,
      n1: by ? by.tgid : 0,
      t1: by ? ms(by.start) : 0n,
      actor: by ? by.tid : 0,
      actorStart: by ? ms(by.start) : 0n,
    });
    return { tid, tgid, start };
  }

  renamed(task: Born, at: number, comm: string, by: Born = task): void {
    this.events.push({ kind: EVENT_KINDS.RENAME, timeNs: ms(at), ...this.#subject(task), comm, actor: by.tid, actorStart: ms(by.start) });
  }

  /** Exit, then (for a child) its reap by `waiter`, then free. */
  ended(task: Born, exit: number, free: number, options: { comm: string; reap?: { by: Born; begin: number; end: number }; dead?: number }): void {
    this.events.push({ kind: EVENT_KINDS.EXIT, timeNs: ms(exit), ...this.#subject(task), comm: options.comm, actor: task.tid, actorStart: ms(task.start) });
    if (options.reap) {
      const { by, begin, end } = options.reap;
      this.events.push({ kind: EVENT_KINDS.WAITED, timeNs: ms(end), ...this.#subject(by), t1: ms(begin), n1: task.tid, actor: by.tid, actorStart: ms(by.start) });
    }
    this.events.push({
      kind: EVENT_KINDS.END,
      timeNs: ms(free),
      ...this.#subject(task),
      t1: ms(exit),
      t2: options.dead !== undefined ? ms(options.dead) : 0n,
      comm: options.comm,
    });
  }

  #subject(task: Born): Partial<RawEvent> {
    return { tid: task.tid, tgid: task.tgid, startNs: ms(task.start), ino: inoOf(task.tid, task.start) };
  }

  build(overrides: Partial<RecorderSummary> = {}): RecorderLog {
    const n = this.events.length;
    const summary: RecorderSummary = {
      inum: INUM,
      level: 1,
      recordSize: 96,
      events: n,
      seq: n,
      dropped: 0,
      storageFailed: 0,
      unknownExits: 0,
      unaccounted: 0,
      recursionMisses: 0,
      born: this.events.filter((e) => e.kind === EVENT_KINDS.NEW).length,
      ended: this.events.filter((e) => e.kind === EVENT_KINDS.END).length,
      writeFailed: false,
      startedNs: String(ms(0)),
      stoppedNs: String(ms(1000)),
      status: 0,
      ...overrides,
    };
    return buildLog(encodeEvents(this.events), summary);
  }
}

// The namespace: an init, a churner forking children, a long-lived process
// with threads, a thread churner that renames itself, and short-lived
// children around the window [100, 110] ms.
const b = new LogBuilder();
const init = b.born(1, 1, 'node', 1);
const churner = b.born(2, 2, 'churner', 2, init);
const l0 = b.born(301, 301, 'L0', 10, churner);
const t302 = b.born(302, 301, 'T0_0', 10.5, l0);
const t304 = b.born(304, 301, 'T0_1', 10.7, l0); // exits inside the window
const t305 = b.born(305, 301, 'T0_2', 10.8, l0);
const tc = b.born(320, 320, 'TC0', 20, churner);
b.renamed(tc, 50, 't0_1');
const t322 = b.born(322, 320, 't0_1', 50.1, tc); // tc acts right after its rename
b.ended(t322, 51, 52, { comm: 't0_1', dead: 51.01 });
b.renamed(tc, 104, 't0_2');
b.renamed(tc, 106, 't0_3');
const t321 = b.born(321, 320, 't0_3', 108, tc); // a new number, inside the window
// PID 350: c1 gone before the window; c2 alive through it.
const c1 = b.born(350, 350, 'c1', 60, churner);
b.ended(c1, 69, 71, { comm: 'c1', reap: { by: churner, begin: 69.5, end: 70 } });
const c2 = b.born(350, 350, 'c2', 80, churner);
// PID 360: c3 alive at the start, reaped inside; c4 takes 360 at 105.
const c3 = b.born(360, 360, 'c3', 90, churner);
b.ended(c3, 102, 104, { comm: 'c3', reap: { by: churner, begin: 102.5, end: 103 } });
const c4 = b.born(360, 360, 'c4', 105, churner);
// PID 370: handed over twice inside the window, at 103 and at 107.
const c5 = b.born(370, 370, 'c5', 90, churner);
b.ended(c5, 101, 102, { comm: 'c5', reap: { by: churner, begin: 101.2, end: 101.3 } });
const c6 = b.born(370, 370, 'c6', 103, churner);
b.ended(c6, 105, 106.5, { comm: 'c6', reap: { by: churner, begin: 105.5, end: 105.6 } });
const c7 = b.born(370, 370, 'c7', 107, churner);
// PID 380: the window-end race: c9 takes 380 10 µs before the end.
const c8 = b.born(380, 380, 'c8', 95, churner);
b.ended(c8, 108, 112, { comm: 'c8', reap: { by: churner, begin: 108.5, end: 109 } });
const c9 = b.born(380, 380, 'c9', 109.99, churner);
// PID 390: alive at the start, exits just before the end, reaped across it.
const c10 = b.born(390, 390, 'c10', 90, churner);
b.ended(c10, 109.9, 115, { comm: 'c10', reap: { by: churner, begin: 109.95, end: 110.05 } });
// PID 395: born after the window.
const c11 = b.born(395, 395, 'c11', 112, churner);
b.ended(t304, 105, 110.5, { comm: 'T0_1', dead: 105.05 });
b.ended(c2, 119, 121, { comm: 'c2', reap: { by: churner, begin: 120, end: 120.01 } });
for (const t of [c4, c7, c9, c11]) b.ended(t, 150, 152, { comm: `c${[4, 7, 9, 11][[c4, c7, c9, c11].indexOf(t)]}`, reap: { by: churner, begin: 150.5, end: 151 } });
for (const t of [t321, t302, t305]) b.ended(t, 500, 501, { comm: t === t321 ? 't0_3' : t === t302 ? 'T0_0' : 'T0_2', dead: 500.01 });
b.ended(tc, 502, 503, { comm: 't0_3', reap: { by: churner, begin: 502.5, end: 502.6 } });
b.ended(l0, 504, 505, { comm: 'L0', reap: { by: churner, begin: 504.5, end: 504.6 } });
b.ended(churner, 506, 507, { comm: 'churner', reap: { by: init, begin: 506.5, end: 506.6 } });
b.ended(init, 508, 509, { comm: 'node' });
const log = b.build();

const ino = (t: Born): bigint => inoOf(t.tid, t.start);
function thread(t: Born, comm: string, startNs = ms(t.start)): ThreadEntry {
  return { tid: t.tid, comm, state: 'S', startNs };
}
function proc(t: Born, comm: string, options: { threads?: ThreadEntry[]; startNs?: bigint; exact?: boolean; ppid?: number; state?: string; pidfdIno?: bigint } = {}): ProcessEntry {
  const startNs = options.startNs ?? ms(t.start);
  return {
    pid: t.tid,
    ppid: options.ppid ?? (t.tid === 1 ? 0 : t.tid === 2 ? 1 : 2),
    uid: 0,
    comm,
    cmdline: [],
    state: options.state ?? 'S',
    startNs,
    startExact: options.exact ?? true,
    pidfdIno: options.pidfdIno ?? ino(t),
    kernelThread: false,
    threads: options.threads ?? [{ tid: t.tid, comm, state: options.state ?? 'S', startNs }],
  };
}
/** TC's thread 321 was born inside the window: its number's hand-over. */
const TC_REUSED: ReusedPid[] = [{ pid: 321, atNs: ms(108) }];
function snap(processes: ProcessEntry[], reused: ReusedPid[] = TC_REUSED, extra: Record<string, unknown> = {}): Snapshot {
  return {
    schema: 'pidgen.snapshot/1',
    host: { hostname: 'h', kernel: '6.18', bootId: 'b' },
    pidNamespace: { inum: INUM },
    clock: 'boottime',
    window: { startNs: ms(W0), endNs: ms(W1) },
    source: 'bpf-iter',
    guard: { kind: 'bpf' },
    coherent: true,
    attempts: 1,
    reused,
    processes,
    stats: { tasks: processes.length, durationNs: ms(W1) - ms(W0) },
    ...extra,
  } as Snapshot;
}

// A snapshot that matches the log: everything alive through the window, the
// newest holder of each number that changed hands, and every hand-over.
const L0 = proc(l0, 'L0', { threads: [thread(l0, 'L0'), thread(t302, 'T0_0'), thread(t305, 'T0_2')] });
const TC = proc(tc, 't0_2', { threads: [thread(tc, 't0_2'), thread(t321, 't0_3')] });
const C2 = proc(c2, 'c2');
const C4 = proc(c4, 'c4');
const C7 = proc(c7, 'c7');
const C9 = proc(c9, 'c9');
const C10 = proc(c10, 'c10', { state: 'Z' });
const base = () => [proc(init, 'node'), proc(churner, 'churner'), L0, TC, C2];
const cleanReused: ReusedPid[] = [
  { pid: 321, atNs: ms(108) },
  { pid: 360, atNs: ms(105) },
  { pid: 370, atNs: ms(103) },
  { pid: 370, atNs: ms(107) },
  { pid: 380, atNs: ms(109.99) },
];
const clean = () => snap([...base(), C4, C7, C9, C10], cleanReused);

const categories = (s: Snapshot): Category[] => checkAgainstRecorder(s, log).violations.map((v) => v.category);

describe('recorder log', () => {
  it('reads a whole log: no problems, every task with its holders in start order', () => {
    expect(log.problems).toEqual([]);
    expect(log.byNumber.get(370)?.map((t) => t.birthComm)).toEqual(['c5', 'c6', 'c7']);
    expect(log.byNumber.get(370)?.[0]?.successor?.birthComm).toBe('c6');
  });

  it('brackets each release with kernel orderings', () => {
    const get = (t: Born): RecordedTask => log.byNumber.get(t.tid)!.find((x) => x.startNs === ms(t.start))!;
    // A reaped child: from the start of the do_wait that reaped it to its return.
    expect(get(c2).release).toEqual({ loNs: ms(120), hiNs: ms(120.01) });
    // A reaped child whose wait began before it exited: from its exit.
    expect(get(c10).release).toEqual({ loNs: ms(109.95), hiNs: ms(110.05) });
    // A thread releases itself before its final switch out.
    expect(get(t304).release).toEqual({ loNs: ms(105), hiNs: ms(105.05) });
    // The successor's start bounds it too (here tighter than sched_process_free).
    expect(get(c8).release.hiNs).toBe(ms(109));
    expect(get(c8).waited).toEqual({ beginNs: ms(108.5), returnNs: ms(109), by: 2 });
  });

  it('a rename is visible from its event until its renamer next acts; a half-done copy may show a mix of the two names', () => {
    const tcTask = log.byNumber.get(320)![0]!;
    expect(commSeenInWindow(tcTask, 't0_1', ms(W0), ms(W1))).toBe(true); // until the rename at 104 is copied (by 106)
    expect(commSeenInWindow(tcTask, 't0_2', ms(W0), ms(W1))).toBe(true);
    expect(commSeenInWindow(tcTask, 't0_3', ms(W0), ms(W1))).toBe(true);
    expect(commSeenInWindow(tcTask, 'TC0', ms(W0), ms(W1))).toBe(false); // gone by 50.1
    expect(commSeenInWindow(tcTask, 't0_1', ms(107), ms(W1))).toBe(false);
    const long = new LogBuilder();
    const p = long.born(5, 5, 'abcdefgh_old', 1);
    long.renamed(p, 2, 'ABCDEFGH_new');
    const task = long.build().byNumber.get(5)![0]!;
    expect(commSeenInWindow(task, 'abcdefgh_new', ms(1.5), ms(3))).toBe(true);
    expect(commSeenInWindow(task, 'ABCDEFGH_old', ms(1.5), ms(3))).toBe(true);
    expect(commSeenInWindow(task, 'abcdXXXX_new', ms(1.5), ms(3))).toBe(false);
  });

  it('a log with a hole says so: lost events, a sequence gap, a missed birth, exit or rename', () => {
    expect(b.build({ dropped: 3, seq: b.events.length + 3 }).problems.join(' ')).toMatch(/3 events dropped/);
    expect(b.build({ seq: b.events.length + 1 }).problems.join(' ')).toMatch(/sequence numbers handed out/);
    expect(b.build({ unknownExits: 2 }).problems.join(' ')).toMatch(/2 tasks of the namespace exited without a recorded birth/);
    expect(b.build({ recursionMisses: 1 }).problems.join(' ')).toMatch(/skipped the programs 1 times/);
    const lossy = new LogBuilder();
    const p = lossy.born(5, 5, 'a', 1);
    lossy.events.push({ kind: EVENT_KINDS.RENAME, timeNs: ms(2), tid: 5, tgid: 5, startNs: ms(1), comm: 'c', n2: 1 });
    expect(lossy.build().problems.join(' ')).toMatch(/a rename before the one at .* was missed/);
    expect(lossy.build().problems.join(' ')).toMatch(/has no recorded exit/);
    lossy.ended(p, 3, 4, { comm: 'c' });
    expect(lossy.build().problems).toEqual([expect.stringMatching(/a rename before the one at .* was missed/)]);
  });

  it('a missed sched_process_free only widens the bracket: the successor or the end of the recording bounds it', () => {
    const noFree = new LogBuilder();
    const p = noFree.born(5, 5, 'a', 1);
    noFree.events.push({ kind: EVENT_KINDS.EXIT, timeNs: ms(3), tid: 5, tgid: 5, startNs: ms(1), comm: 'a' });
    const q = noFree.born(6, 6, 'b', 2);
    noFree.events.push({ kind: EVENT_KINDS.EXIT, timeNs: ms(3), tid: 6, tgid: 6, startNs: ms(2), comm: 'b' });
    const r = noFree.born(6, 6, 'c', 9);
    noFree.ended(r, 10, 11, { comm: 'c' });
    const built = noFree.build();
    expect(built.problems).toEqual([]);
    expect(built.byNumber.get(p.tid)![0]!.release).toEqual({ loNs: ms(3), hiNs: ms(1000) });
    expect(built.byNumber.get(q.tid)![0]!.release).toEqual({ loNs: ms(3), hiNs: ms(9) });
  });
});

describe('checkAgainstRecorder', () => {
  it('a snapshot that matches the log breaks no rule, and the checker says what it judged', () => {
    const result = checkAgainstRecorder(clean(), log);
    expect(result.violations).toEqual([]);
    // 321, 360, 370 (twice), 380.
    expect(result.handOvers).toBe(5);
    // init, churner, L0, its threads 302 and 305, TC, c2.
    expect(result.required).toBe(7);
    expect(result.timeline).toBe('absent');
  });

  it('refuses a snapshot of another namespace', () => {
    expect(() => checkAgainstRecorder({ ...clean(), pidNamespace: { inum: 1 } }, log)).toThrow(/namespace/);
  });

  describe('identity', () => {
    it('the start time of one task with the comm of another is a violation', () => {
      const v = checkAgainstRecorder(snap([...base().filter((p) => p.pid !== 350), proc(c2, 'c2', { startNs: ms(60), pidfdIno: ino(c1) })]), log).violations;
      expect(v.map((x) => x.category)).toContain('identity');
      expect(v.find((x) => x.category === 'identity')?.message).toMatch(/comm is none T had/);
    });

    it('a comm the task did not have during the window is a violation', () => {
      // The entry then names no task that held 320, so 320 is missing too.
      expect(categories(snap([...base().filter((p) => p.pid !== 320), proc(tc, 'TC0', { threads: TC.threads })]))).toEqual(['identity', 'completeness']);
    });

    it('/proc clock ticks match the floor of start_boottime, nothing else', () => {
      const ticks = (x: number) => (ms(x) / 10_000_000n) * 10_000_000n;
      const withStart = (startNs: bigint, exact: boolean) => snap([...base().filter((p) => p.pid !== 350), proc(c2, 'c2', { startNs, exact })]);
      expect(categories(withStart(ticks(80), false))).toEqual([]);
      // (An entry that names no task also leaves c2 missing.)
      expect(categories(withStart(ticks(80) + 10_000_000n, false))).toEqual(['identity', 'completeness']);
      // Exact means exact.
      expect(categories(withStart(ms(80) - 1n, true))).toEqual(['identity', 'completeness']);
      // A thread entry may carry either.
      const threadTicks = proc(l0, 'L0', { threads: [thread(l0, 'L0'), thread(t302, 'T0_0', ticks(10.5)), thread(t305, 'T0_2')] });
      expect(categories(snap([...base().filter((p) => p.pid !== 301), threadTicks]))).toEqual([]);
    });

    it('a pidfs inode of another task, or a thread listed as a process, is a violation', () => {
      expect(categories(snap([...base().filter((p) => p.pid !== 350), proc(c2, 'c2', { pidfdIno: 77n })]))).toEqual(['identity', 'completeness']);
      expect(categories(snap([...base(), proc(t302, 'T0_0', { pidfdIno: ino(t302) })]))).toEqual(['identity']);
    });

    it('a task that started after the window end is a violation', () => {
      const v = checkAgainstRecorder(snap([...base(), proc(c11, 'c11')]), log).violations;
      expect(v.map((x) => x.category)).toContain('identity');
      expect(v.map((x) => x.message).join(' ')).toMatch(/started after the window end/);
    });

    it('a zombie that had not exited, or a ppid that is not its living parent, is a violation', () => {
      expect(categories(snap([...base().filter((p) => p.pid !== 350), proc(c2, 'c2', { state: 'Z' })]))).toEqual(['identity']);
      expect(categories(snap([...base().filter((p) => p.pid !== 350), proc(c2, 'c2', { ppid: 1 })]))).toEqual(['identity']);
    });
  });

  describe('stale', () => {
    it('a task whose number was freed before the window is a violation', () => {
      const v = checkAgainstRecorder(snap([...base().filter((p) => p.pid !== 350), proc(c1, 'c1')]), log).violations;
      expect(v.map((x) => x.category)).toContain('stale');
      expect(v.find((x) => x.category === 'stale')?.message).toMatch(/released before the window/);
    });

    it('the window-end race: the old task listed while a new one took its number 10 µs before the end, unlisted', () => {
      const C8 = proc(c8, 'c8', { state: 'Z' });
      const v = checkAgainstRecorder(snap([...base(), C8]), log).violations;
      expect(v.map((x) => x.category).sort()).toEqual(['reuse', 'stale']);
      expect(v.find((x) => x.category === 'stale')?.message).toMatch(/10\.0 µs before the window end/);
      // Listing the hand-over makes the old entry acceptable: the split is known.
      expect(categories(snap([...base(), C8], [...TC_REUSED, { pid: 380, atNs: ms(109.99) }]))).toEqual([]);
    });
  });

  describe('reuse', () => {
    it('a number that changed hands inside the window must be listed', () => {
      const v = checkAgainstRecorder(snap([...base(), C4], [{ pid: 321, atNs: ms(108) }]), log).violations;
      expect(v).toMatchObject([{ category: 'reuse', pid: 360 }]);
      expect(v[0]?.message).toMatch(/reused does not list 360/);
    });

    it('a number handed over twice in one window needs both hand-overs, in time order', () => {
      const only = (reused: ReusedPid[]) => categories(snap([...base(), C7], [{ pid: 321, atNs: ms(108) }, ...reused]));
      expect(only([{ pid: 370, atNs: ms(103) }, { pid: 370, atNs: ms(107) }])).toEqual([]);
      expect(only([{ pid: 370, atNs: ms(107) }])).toEqual(['reuse']);
      expect(only([{ pid: 370, atNs: ms(107) }, { pid: 370, atNs: ms(103) }])).toEqual(['reuse']);
    });

    it('atNs is the new task\'s start_boottime, within AT_NS_TOLERANCE_NS', () => {
      expect(AT_NS_TOLERANCE_NS).toBe(0n);
      const v = checkAgainstRecorder(snap([...base(), C4], [{ pid: 321, atNs: ms(108) }, { pid: 360, atNs: ms(105) + 1n }]), log).violations;
      expect(v.map((x) => x.message)).toEqual([expect.stringMatching(/only at/), expect.stringMatching(/no task took 360 then/)]);
    });

    it('threads\' numbers count too: a thread born in the window is a hand-over of its number', () => {
      expect(categories(snap([...base()], []))).toEqual(['reuse']);
      expect(categories(snap([...base()]))).toEqual([]);
    });
  });

  describe('completeness', () => {
    it('a missing process, or a missing thread, alive for the whole window, is a violation', () => {
      const v = checkAgainstRecorder(snap([...base().filter((p) => p.pid !== 301)], [{ pid: 321, atNs: ms(108) }]), log).violations;
      expect(v.map((x) => [x.category, x.pid, x.tid])).toEqual([
        ['completeness', 301, undefined],
        ['completeness', 301, 302],
        ['completeness', 301, 305],
      ]);
      const noThread = proc(l0, 'L0', { threads: [thread(l0, 'L0'), thread(t302, 'T0_0')] });
      expect(checkAgainstRecorder(snap([...base().filter((p) => p.pid !== 301), noThread], [{ pid: 321, atNs: ms(108) }]), log).violations).toMatchObject([
        { category: 'completeness', pid: 301, tid: 305 },
      ]);
    });

    it('a zombie counts as alive: a child that exited but was reaped after the window must be there', () => {
      const v = checkAgainstRecorder(snap([...base().filter((p) => p.pid !== 350)], [{ pid: 321, atNs: ms(108) }]), log).violations;
      expect(v).toMatchObject([{ category: 'completeness', pid: 350 }]);
      expect(v[0]?.message).toMatch(/release began 10000\.0 µs after the window end/);
    });

    it('a task released inside the window, or being released at its end, may be missing', () => {
      const result = checkAgainstRecorder(snap([...base(), C4, C7, C9], cleanReused), log);
      expect(result.violations).toEqual([]);
      // c10 exited at 109.9 and its reap ran from 109.95 to 110.05.
      expect(result.releasingAtEnd).toBe(1);
    });
  });

  describe('timeline', () => {
    const c6Item = { pid: 370, tid: 370, comm: 'c6', startNs: ms(103), exitNs: ms(105) };
    // Alive at the window start, exited inside it, and not entries.
    const diedInside = [
      { pid: 301, tid: 304, comm: 'T0_1', startNs: ms(10.7), exitNs: ms(105) },
      { pid: 360, tid: 360, comm: 'c3', startNs: ms(90), exitNs: ms(102) },
      { pid: 380, tid: 380, comm: 'c8', startNs: ms(95), exitNs: ms(108) },
    ];
    it('`exited` must name real tasks that exited inside the window, and every one of them that is not an entry', () => {
      expect(checkAgainstRecorder(snap([...base(), C4, C7, C9, C10], cleanReused, { exited: [c6Item, ...diedInside] }), log)).toMatchObject({
        timeline: 'checked',
        timelineItems: 4,
        violations: [],
      });
      expect(categories(snap([...base(), C4, C7, C9, C10], cleanReused, { exited: [c6Item] }))).toEqual(['timeline', 'timeline', 'timeline']);
      const wrongExit = { ...c6Item, exitNs: ms(106.5) };
      expect(categories(snap([...base(), C4, C7, C9, C10], cleanReused, { exited: [wrongExit, ...diedInside] }))).toEqual(['timeline']);
    });
  });

  it('the unguarded kind of mistake is caught under several rules at once', () => {
    const C3 = proc(c3, 'c3');
    expect(new Set(categories(snap([proc(init, 'node'), L0, C3])))).toEqual(new Set(['stale', 'reuse', 'completeness']));
  });
});

describe('the two views', () => {
  const churnLog = [
    `child 350 350 c2 ${ms(79.9)} ${ms(80.1)} ${ms(119.995)} ${ms(120.02)}`,
    `thread 302 301 T0_0 ${ms(10.4)} ${ms(10.6)} -1 -1`,
  ].join('\n');

  it('every churner task is a recorded task with the same birth and a release inside its reap bounds', () => {
    expect(compareTasks(parseChurnLog(churnLog), log)).toEqual({ matched: 2, disagreements: [] });
    const wrong = compareTasks(parseChurnLog(`child 350 350 c2 ${ms(79.9)} ${ms(80.1)} ${ms(130)} ${ms(131)}`), log);
    expect(wrong.disagreements[0]?.message).toMatch(/outside the reap bounds/);
  });

  it('a churner-view violation the recorder does not find is reported', () => {
    const exact = checkAgainstRecorder(snap([...base().filter((p) => p.pid !== 350)], [{ pid: 321, atNs: ms(108) }]), log).violations;
    expect(unconfirmed([{ property: 'P3', pid: 350, message: 'missing' }], exact)).toEqual([]);
    expect(unconfirmed([{ property: 'P2', pid: 350, message: 'reused' }], exact)).toHaveLength(1);
  });
});
