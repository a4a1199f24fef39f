// The coherence checker itself, on synthetic churner logs and snapshots: each
// property must catch its violation and stay quiet on the clean and the
// ambiguous cases.
import { describe, expect, it } from 'vitest';
import { boundStats, CHURNER_NAMES, checkSnapshot, checkSnapshotDetailed, parseChurnLog, reviveSnapshot } from '../helpers/ground-truth.js';
import { SNAPSHOT_SCHEMA, type ProcessEntry, type ReusedPid, type Snapshot, type ThreadEntry } from '../../src/index.js';

// Times in ms from an arbitrary boot offset, written out in ns.
const BASE = 5_000_000_000_000n;
const ms = (x: number): bigint => BASE + BigInt(Math.round(x * 1_000_000));
const row = (kind: string, pid: number, tgid: number, name: string, fb: number, fa: number, rb: number | null, ra: number | null) =>
  `${kind} ${pid} ${tgid} ${name} ${ms(fb)} ${ms(fa)} ${rb === null ? -1 : ms(rb)} ${ra === null ? -1 : ms(ra)}`;

// Window: 100 ms .. 110 ms.
const LOG = [
  '# churner pid=1 pid_max=400 longlived=1 threads=1',
  `# churn start_ns=${ms(50)} end_ns=${ms(200)} forks=4 wraps=1`,
  '# kind pid tgid name fork_before_ns fork_after_ns reap_before_ns reap_after_ns',
  row('long', 301, 301, 'L0', 10, 10.2, 300, 301),
  row('thread', 302, 301, 'T0_0', 10.5, 10.6, 300, 301),
  // PID 350: c1 dies before the window, c2 lives across it.
  row('child', 350, 350, 'c1', 60, 60.2, 70, 70.01),
  row('child', 350, 350, 'c2', 80, 80.2, 120, 120.01),
  // PID 360: c3 alive at the window start, reaped inside; c4 takes 360 inside.
  row('child', 360, 360, 'c3', 90, 90.2, 103, 103.01),
  row('child', 360, 360, 'c4', 105, 105.2, 130, 130.01),
  // PID 370: c5 reaped right around the window start (ambiguous); c6 born inside.
  row('child', 370, 370, 'c5', 90, 90.2, 99.99, 100.05),
  row('child', 370, 370, 'c6', 106, 106.2, 140, 140.01),
  // PID 380: born around the window start (ambiguous for P3).
  row('child', 380, 380, 'c7', 99.9, 100.1, 150, 150.01),
].join('\n');

const truth = parseChurnLog(LOG);

function thread(tid: number, comm: string, startNs: bigint): ThreadEntry {
  return { tid, comm, state: 'S', startNs };
}
function proc(pid: number, comm: string, startNs: bigint, threads: ThreadEntry[] = [], startExact = true): ProcessEntry {
  return {
    pid,
    ppid: 1,
    uid: 0,
    comm,
    cmdline: [],
    state: 'S',
    startNs,
    startExact,
    kernelThread: false,
    threads: threads.length ? threads : [thread(pid, comm, startNs)],
  };
}
function snap(processes: ProcessEntry[], reused: ReusedPid[] = []): Snapshot {
  return {
    schema: SNAPSHOT_SCHEMA,
    host: { hostname: 'h', kernel: '6.18', bootId: 'b' },
    pidNamespace: { inum: 1 },
    clock: 'boottime',
    window: { startNs: ms(100), endNs: ms(110) },
    source: 'procfs',
    guard: { kind: 'bpf' },
    coherent: true,
    attempts: 1,
    reused,
    exited: [],
    processes,
    stats: { tasks: processes.length, durationNs: ms(110) - ms(100) },
  };
}

// Everything alive through the window, with the truth's facts.
const L0 = proc(301, 'L0', ms(10.1), [thread(301, 'L0', ms(10.1)), thread(302, 'T0_0', ms(10.55))]);
const C2 = proc(350, 'c2', ms(80.1));
const C7 = proc(380, 'c7', ms(100));
const C4 = proc(360, 'c4', ms(105.1));
const C6 = proc(370, 'c6', ms(106.1));
const clean = () => [L0, C2, C7];

describe('parseChurnLog', () => {
  it('reads tasks, comments and unreaped markers', () => {
    expect(truth.tasks).toHaveLength(9);
    expect(truth.churnerPid).toBe(1);
    expect(truth.churn).toEqual({ startNs: ms(50), endNs: ms(200), forks: 4, wraps: 1 });
    expect(truth.byPid.get(350)?.map((t) => t.name)).toEqual(['c1', 'c2']);
    const open = parseChurnLog(row('child', 9, 9, 'c9', 1, 2, null, null));
    expect(open.tasks[0]?.reapBeforeNs).toBeNull();
  });

  it('rejects malformed lines', () => {
    expect(() => parseChurnLog('child 1 1 c1 5 6 7')).toThrow(/8 fields/);
    expect(() => parseChurnLog('zombie 1 1 c1 5 6 7 8')).toThrow(/unknown kind/);
  });

  it('measures the bounds', () => {
    const stats = boundStats(truth);
    expect(stats.forkWidthNs.max).toBe(200_000n);
    expect(stats.reapWidthNs.max).toBe(60_000n);
  });
});

describe('checkSnapshot', () => {
  it('a snapshot that matches the truth has no violations', () => {
    expect(checkSnapshot(snap(clean()), truth)).toEqual([]);
  });

  it('with the churner\'s names, ignores entries of other programs that reuse its numbers', () => {
    // A CLI's node thread took 350 after c2: not the churner's, not judged.
    const other = proc(350, 'node', ms(130));
    expect(checkSnapshot(snap([L0, other, C7]), truth).map((x) => x.property)).toContain('P1');
    expect(checkSnapshot(snap([L0, other, C7]), truth, { names: CHURNER_NAMES })).toEqual([]);
    expect(CHURNER_NAMES.test('c1f')).toBe(true);
    expect(CHURNER_NAMES.test('t0_1a')).toBe(true);
    expect(CHURNER_NAMES.test('node')).toBe(false);
  });

  it('ignores entries whose PID the log never saw', () => {
    expect(checkSnapshot(snap([...clean(), proc(1, 'node', ms(1)), proc(399, 'whatever', ms(1))]), truth)).toEqual([]);
  });

  describe('P1: facts from one task', () => {
    it('comm of one task with the start time of another is a violation', () => {
      // PID 350: comm of c2 (the current holder), start time of c1 (the old one).
      const v = checkSnapshot(snap([L0, proc(350, 'c2', ms(60.1)), C7]), truth);
      expect(v.map((x) => x.property)).toEqual(['P1']);
      expect(v[0]?.message).toMatch(/mixed or stale facts/);
      expect(v[0]?.message).toMatch(/startNs fits another task: child c1/);
    });

    it('a comm no task with that PID had is a violation', () => {
      const v = checkSnapshot(snap([L0, proc(350, 'c4', ms(80.1)), C7]), truth);
      expect(v.map((x) => x.property)).toEqual(['P1']);
    });

    it('a task whose PID was freed before the window is stale', () => {
      // c1 (reaped at 70 ms) reported in a window that starts at 100 ms, where c2 held 350.
      const v = checkSnapshot(snap([L0, proc(350, 'c1', ms(60.1)), C7]), truth);
      expect(v.map((x) => x.property)).toEqual(['P1']);
      expect(v.find((x) => x.property === 'P1')?.message).toMatch(/freed before the window/);
    });

    it('thread entries are judged too, including their thread group', () => {
      const wrongThread = proc(301, 'L0', ms(10.1), [thread(301, 'L0', ms(10.1)), thread(302, 'T0_0', ms(60.1))]);
      const v = checkSnapshot(snap([wrongThread, C2, C7]), truth);
      expect(v).toMatchObject([{ property: 'P1', pid: 301, tid: 302 }]);
      // A process entry for a thread's TID is wrong even with the right facts.
      const threadAsProcess = proc(302, 'T0_0', ms(10.55));
      expect(checkSnapshot(snap([...clean(), threadAsProcess]), truth).map((x) => x.property)).toEqual(['P1']);
    });

    it('clock-tick start times get the lower bound rounded down to 10 ms', () => {
      // c2 forked in [80, 80.2] ms; in ticks its start reads as 80 ms (or 70 if BASE were unaligned).
      const ticks = proc(350, 'c2', ms(80), [], false);
      expect(checkSnapshot(snap([L0, ticks, C7]), truth)).toEqual([]);
      // The same value claimed as exact is outside the fork bounds.
      const claimedExact = proc(350, 'c2', ms(80) - 1n, [], true);
      expect(checkSnapshot(snap([L0, claimedExact, C7]), truth).map((x) => x.property)).toEqual(['P1']);
      // Ticks still may not reach into an earlier tick.
      const tooEarly = proc(350, 'c2', ms(70), [], false);
      expect(checkSnapshot(snap([L0, tooEarly, C7]), truth).map((x) => x.property)).toEqual(['P1']);
    });
  });

  describe('P2: one task per PID through the window, unless reused says so', () => {
    it('a PID that changed hands inside the window is a violation when reused does not list it', () => {
      const v = checkSnapshot(snap([...clean(), C4]), truth);
      expect(v).toMatchObject([{ property: 'P2', pid: 360 }]);
      expect(v[0]?.message).toMatch(/reused does not list it/);
    });

    it('the same PID is clean when reused lists it at the new task\'s fork', () => {
      expect(checkSnapshot(snap([...clean(), C4], [{ pid: 360, atNs: ms(105.1) }]), truth)).toEqual([]);
    });

    it('reused at the wrong time does not excuse it', () => {
      const v = checkSnapshot(snap([...clean(), C4], [{ pid: 360, atNs: ms(104) }]), truth);
      expect(v).toMatchObject([{ property: 'P2', pid: 360 }]);
      expect(v[0]?.message).toMatch(/lists it only at/);
    });

    it('a stale entry for the old holder is caught the other way round', () => {
      // c3 read (it was alive at the window start), but c4 took 360 inside the window.
      const C3 = proc(360, 'c3', ms(90.1));
      expect(checkSnapshot(snap([...clean(), C3]), truth)).toMatchObject([{ property: 'P2', pid: 360 }]);
      expect(checkSnapshot(snap([...clean(), C3], [{ pid: 360, atNs: ms(105.1) }]), truth)).toEqual([]);
    });

    it('an old holder that may have been gone before the window is not held against it', () => {
      // c5's reap straddles the window start: ambiguous, so no violation.
      expect(checkSnapshot(snap([...clean(), C6]), truth)).toEqual([]);
    });
  });

  describe('P3: every task alive for the whole window is there', () => {
    it('a missing long-lived process is a violation', () => {
      const v = checkSnapshot(snap([C2, C7]), truth);
      expect(v.map((x) => [x.property, x.pid, x.tid])).toEqual([
        ['P3', 301, undefined],
        ['P3', 301, 302],
      ]);
    });

    it('a missing thread is a violation, unless the snapshot was taken without threads', () => {
      const noThread = proc(301, 'L0', ms(10.1), [thread(301, 'L0', ms(10.1))]);
      expect(checkSnapshot(snap([noThread, C2, C7]), truth)).toMatchObject([{ property: 'P3', pid: 301, tid: 302 }]);
      expect(checkSnapshot(snap([noThread, C2, C7]), truth, { threads: false })).toEqual([]);
    });

    it('a missing short-lived child that lived across the window is a violation', () => {
      expect(checkSnapshot(snap([L0, C7]), truth)).toMatchObject([{ property: 'P3', pid: 350 }]);
    });

    it('a task born or reaped around the window edges may be missing', () => {
      // c7 forked in [99.9, 100.1] ms: maybe after the window start.
      expect(checkSnapshot(snap([L0, C2]), truth)).toEqual([]);
    });
  });

  it('counts what it judged and what it could not decide', () => {
    const detail = checkSnapshotDetailed(snap([...clean(), C4, C6], [{ pid: 360, atNs: ms(105.1) }]), truth);
    expect(detail.violations).toEqual([]);
    // L0, its thread T0_0, c2, c7, c4, c6.
    expect(detail.judged).toBe(6);
    // c3 held 360 inside the window; reused excuses it.
    expect(detail.excused).toBe(1);
    // L0, T0_0 and c2 surely lived through the window.
    expect(detail.required).toBe(3);
    // c5 may have held 370 at the window start; c7 may have lived through it, but is there.
    expect(detail.ambiguous).toEqual({ P2: 1, P3: 0 });
    expect(checkSnapshotDetailed(snap([L0, C2]), truth).ambiguous).toEqual({ P2: 0, P3: 1 });
  });

  it('a logged name "-" matches any comm, but not any start time', () => {
    const any = parseChurnLog([row('long', 301, 301, '-', 10, 10.2, 300, 301)].join('\n'));
    expect(checkSnapshot(snap([proc(301, 't0_1f', ms(10.1))]), any)).toEqual([]);
    expect(checkSnapshot(snap([proc(301, 't0_1f', ms(20))]), any).map((x) => x.property)).toEqual(['P1']);
  });

  it('revives pidgen.snapshot JSON into the checked shape', () => {
    const s = snap([...clean(), C4], [{ pid: 360, atNs: ms(105.1) }]);
    const json = JSON.parse(JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
    const back = reviveSnapshot(json);
    expect(back).toEqual(s);
    expect(checkSnapshot(back, truth)).toEqual([]);
  });

  it('a task missing from the snapshot is excused only when its exit by the window end is reported, and before its reap', () => {
    // C4-like: a child alive through the window by the churner's bounds.
    const log = parseChurnLog([row('child', 350, 350, 'c350', 50, 50.1, 120, 120.1)].join('\n'));
    expect(checkSnapshot(snap([]), log).map((x) => x.property)).toEqual(['P3']);
    const exitedAt = (exitMs: number) => ({ ...snap([]), exited: [{ pid: 350, tid: 350, comm: 'c350', startNs: ms(50.05), exitNs: ms(exitMs) }] });
    expect(checkSnapshot(exitedAt(105), log)).toEqual([]);
    // An exit reported after the window end, or after the reap, excuses nothing.
    expect(checkSnapshot(exitedAt(111), log).map((x) => x.property)).toEqual(['P3']);
    // A zombie that exited before the window and was dropped: excused.
    expect(checkSnapshot(exitedAt(90), log)).toEqual([]);
  });
});
