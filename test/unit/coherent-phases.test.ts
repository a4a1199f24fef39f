// The coherence algorithm's phases, against a scripted world: a
// fixture-backed source (captured /proc files, parsed by pidgen's procfs
// source) and a fake tracker whose log records arrive when the test says.
// No root, no addon: each case is one of the races the real-kernel churn
// test meets by chance, set up on purpose.
import { describe, expect, it } from 'vitest';
import { walkCoherently } from '../../src/snapshot/coherent.js';
import { wrapPossible } from '../../src/snapshot/window.js';
import { World } from '../helpers/fixture-world.js';

const pids = (outcome: { processes: { pid: number }[] }) => outcome.processes.map((p) => p.pid);
const commOf = (outcome: { processes: { pid: number; comm: string }[] }, pid: number) =>
  outcome.processes.find((p) => p.pid === pid)?.comm;

describe('coherence phases', () => {
  it('a quiet window is coherent at the first attempt, lists every task, and re-reads nothing', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(40, 'sshd');
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 3 });
    expect(outcome.coherent).toBe(true);
    expect(outcome.attempts).toBe(1);
    expect(pids(outcome)).toEqual([1, 40]);
    expect(outcome.reused).toEqual([]);
    expect(world.rereads).toEqual([]);
  });

  it('a PID handed to a new task after the walk saw it is repaired: the new task, listed under reused with its holder', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(300, 'old');
    let fresh = 0n;
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 3 }, {
      afterFirstWalk: () => {
        fresh = world.handOver(300, 'new').startNs;
      },
    });
    expect(outcome.coherent).toBe(true);
    expect(commOf(outcome, 300)).toBe('new');
    expect(outcome.reused).toEqual([{ pid: 300, atNs: fresh, holder: 300 }]);
    expect(world.rereads).toEqual([[300]]);
  });

  it('out of attempts, a suspect is dropped rather than listed as a task it may not be', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(300, 'old');
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 1 }, {
      afterFirstWalk: () => void world.handOver(300, 'new'),
    });
    expect(outcome.coherent).toBe(true);
    expect(pids(outcome)).toEqual([1]);
    expect(outcome.reused).toEqual([]);
  });

  it('a task the walk saw whose record is late: the last checkpoint waits for it, then lists it as a hand-over', async () => {
    let late = 0n;
    const world = new World();
    world.existing(1, 'init');
    world.advance(20_000_000n);
    const tracker = world.tracker();
    const source = world.source();
    const started = tracker.start.bind(tracker);
    tracker.start = () => {
      const startNs = started();
      world.advance(20_000_000n);
      late = world.spawn(77, 'young', { lateBy: 2 }).startNs;
      return startNs;
    };
    const outcome = await walkCoherently(tracker, source, { maxAttempts: 3 });
    expect(outcome.coherent).toBe(true);
    expect(pids(outcome)).toEqual([1, 77]);
    expect(outcome.reused).toEqual([{ pid: 77, atNs: late, holder: 77 }]);
    // Once the record came, the entry was re-read: without a pidfs inode it
    // could have been an older holder of 77.
    expect(world.rereads).toEqual([[77]]);
  });

  it('a task that started in the window but is never logged is not vouched for: re-read, then dropped', async () => {
    const world = new World();
    world.existing(1, 'init');
    const tracker = world.tracker();
    const started = tracker.start.bind(tracker);
    tracker.start = () => {
      const startNs = started();
      world.advance(20_000_000n);
      world.spawn(88, 'unlogged', { logged: false });
      return startNs;
    };
    const outcome = await walkCoherently(tracker, world.source(), { maxAttempts: 2 });
    expect(outcome.coherent).toBe(true);
    expect(pids(outcome)).toEqual([1]);
  });

  it('when the log lost records, only a new full walk in a new window is vouched for', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(300, 'old');
    const tracker = world.tracker();
    tracker.lost = true;
    const outcome = await walkCoherently(tracker, world.source(), { maxAttempts: 3 });
    expect(outcome.coherent).toBe(true);
    expect(outcome.fullScans).toBe(2);
    expect(outcome.attempts).toBe(2);
    expect(world.walks).toHaveLength(2);
    expect(outcome.window.startNs).toBeGreaterThan(world.clockNs - 10_000_000n);
  });

  it('when the log keeps losing records, the snapshot says so instead of claiming coherence', async () => {
    const world = new World();
    world.existing(1, 'init');
    const tracker = world.tracker();
    world.beforeDrain = () => {
      tracker.lost = true;
    };
    const outcome = await walkCoherently(tracker, world.source(), { maxAttempts: 2 });
    expect(outcome.coherent).toBe(false);
    expect(outcome.reason).toMatch(/allocation log overflowed .*gave up after 2 attempts/);
  });

  it('a thread whose TID was handed to a thread of another process: the stale claim is repaired away', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(100, 'app');
    world.existing(101, 'app-worker', 100);
    world.existing(200, 'other');
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 3 }, {
      afterFirstWalk: () => {
        world.exit(101);
        world.spawn(101, 'other-worker', { tgid: 200 });
      },
    });
    expect(outcome.coherent).toBe(true);
    const app = outcome.processes.find((p) => p.pid === 100)!;
    const other = outcome.processes.find((p) => p.pid === 200)!;
    expect(app.threads.map((t) => t.tid)).toEqual([100]);
    // The new thread started inside the window: listing it is not required,
    // and the walk's entry for 200 did not have it.
    expect(other.threads.map((t) => t.tid)).toEqual([200]);
    expect(outcome.reused).toEqual([]);
  });

  it('a PID handed over twice in one window: both hand-overs, in time order, the holder on the last, the middle task under exited', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(300, 'first');
    let middle = 0n;
    let last = 0n;
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 3 }, {
      afterFirstWalk: () => {
        middle = world.handOver(300, 'second').startNs;
        last = world.handOver(300, 'third').startNs;
      },
    });
    expect(outcome.coherent).toBe(true);
    expect(commOf(outcome, 300)).toBe('third');
    expect(outcome.reused).toEqual([
      { pid: 300, atNs: middle },
      { pid: 300, atNs: last, holder: 300 },
    ]);
    expect(outcome.exited.map((t) => [t.tid, t.comm, t.startNs === middle])).toEqual([
      [300, 'first', false],
      [300, 'second', true],
    ]);
  });

  it('the window-end race: a stale entry whose successor\'s record never arrives is dropped, not claimed coherent', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(312, 'old');
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 3 }, {
      afterFirstWalk: () => {
        // The old task exits and is reaped; a new task takes 312 before the
        // window ends, but its task_newtask record lands after every drain.
        world.handOver(312, 'successor', { lateBy: 99 });
      },
    });
    expect(outcome.coherent).toBe(true);
    // Not the old task under 312: it died in the window.
    expect(outcome.processes.find((p) => p.pid === 312)?.comm).not.toBe('old');
    expect(outcome.exited.map((t) => [t.tid, t.comm])).toEqual([[312, 'old']]);
  });

  it('a process that exited inside the window but is not reaped (a zombie) stays: it still holds its PID', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(500, 'zombie');
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 3 }, {
      afterFirstWalk: () => world.die(500),
    });
    expect(outcome.coherent).toBe(true);
    expect(pids(outcome)).toEqual([1, 500]);
    expect(outcome.exited).toEqual([]);
    // Re-read once after the window end to check it still holds 500.
    expect(world.rereads).toEqual([[500]]);
  });

  it('a zombie reaped between the last checkpoint and its re-read: the window ends again after the reap, so leaving it out is right', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(600, 'zombie');
    let reapedAt: bigint | undefined;
    world.beforeReread = (rereadPids) => {
      if (reapedAt === undefined && rereadPids.includes(600)) reapedAt = world.reap(600);
    };
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 3 }, {
      afterFirstWalk: () => world.die(600),
    });
    expect(outcome.coherent).toBe(true);
    expect(pids(outcome)).toEqual([1]);
    // It held its PID until reapedAt; a window ending before that would have to list it.
    expect(reapedAt).toBeDefined();
    expect(outcome.window.endNs).toBeGreaterThan(reapedAt!);
    expect(outcome.exited.map((e) => e.tid)).toEqual([600]);
  });

  it('a zombie from before the log was armed, reaped mid-window, its PID taken by a task logged too late: never listed as the holder', async () => {
    const world = new World();
    world.existing(1, 'init');
    // Exited before the window: its exit record is not in the log.
    world.existing(600, 'old').zombie = true;
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 3 }, {
      afterFirstWalk: () => {
        world.reap(600);
        world.spawn(600, 'new', { lateBy: 1_000 });
      },
    });
    expect(outcome.coherent).toBe(true);
    expect(commOf(outcome, 600)).not.toBe('old');
  });

  it('an exit after the window end that reached the last drain changes nothing: the task was alive for the whole window', async () => {
    const world = new World();
    world.existing(1, 'init');
    world.existing(600, 'late-exit');
    const outcome = await walkCoherently(world.tracker(), world.source(), { maxAttempts: 3 }, {
      // Logged before the drain, but stamped after the window end, and reaped
      // before any re-read could see it.
      afterFirstWalk: () => world.die(600, { atNs: world.clockNs + 1_000_000_000n, reaped: true }),
    });
    expect(outcome.coherent).toBe(true);
    expect(pids(outcome)).toEqual([1, 600]);
    expect(outcome.exited).toEqual([]);
    expect(world.rereads).toEqual([]);
  });
});

describe('the cursor guard: re-reads vouch only for what they verified', () => {
  it('a thread born in the window that a later re-read brings in is left out: without a log it cannot be listed as a hand-over', async () => {
    // The churn run that found it: a thread of a re-read process had taken
    // its number in an earlier interval, outside the range being verified,
    // and was kept with a start inside the window and nothing in reused.
    const world = new World();
    world.existing(1, 'init');
    world.existing(30, 'other');
    world.existing(10, 'threads');
    world.existing(12, 't-old', 10);
    world.beforeDrain = (index) => {
      if (index === 1) world.handOver(12, 't-new'); // the second interval: 12 is verified, so 10 is re-read
    };
    const outcome = await walkCoherently(world.cursorTracker(), world.source(), { maxAttempts: 3 }, {
      afterFirstWalk: () => {
        world.spawn(20, 't-born', { tgid: 10 }); // the first interval, after the walk passed 10
        world.handOver(30, 'other-new'); // so that the first checkpoint re-reads and a second follows
      },
    });
    expect(outcome.coherent).toBe(true);
    expect(world.rereads).toEqual([[30], [10]]);
    expect(pids(outcome)).toEqual([1, 10]);
    const threads = outcome.processes.find((p) => p.pid === 10)?.threads.map((t) => t.tid);
    expect(threads).toEqual([10]);
    expect(outcome.reused).toEqual([]);
  });
});

describe('the cursor guard: can the cursor have gone round?', () => {
  const at = (lastPid: number, forks: number, tasks: number) => ({ lastPid, forks: BigInt(forks), tasks: BigInt(tasks) });
  const range = (from: number, to: number) => new Set(Array.from({ length: to - from }, (_, i) => from + i));

  it('a cursor that went down wrapped', () => {
    expect(wrapPossible(at(390, 0, 100), at(305, 10, 110), 400, new Set())).toMatch(/may have wrapped/);
  });

  it('300 -> 305 in 10 forks wrapped when the 94 numbers above it are held: the allocator skips them', () => {
    // The old rule (300 + 10 < 400: no wrap) said the cursor only swept 301-305.
    expect(wrapPossible(at(300, 0, 100), at(305, 10, 110), 400, range(306, 400))).toMatch(/94 numbers held/);
  });

  it('tasks that died before the walk read them count too: a number may have been held when the cursor passed it', () => {
    expect(wrapPossible(at(300, 0, 100), at(305, 10, 110), 400, range(306, 340))).toBeUndefined();
    // 60 exits on the host: up to 60 numbers held then, not seen by the walk.
    expect(wrapPossible(at(300, 0, 100), at(305, 10, 50), 400, range(306, 340))).toMatch(/60 exits/);
  });

  it('from the second checkpoint on, tasks born earlier in the window count too: the walk may have passed their numbers before they took them', () => {
    // The churn run that found it: threads born during the first interval
    // held numbers no read had seen, the cursor went round in the second,
    // and the walk's entries for those numbers were vouched for.
    expect(wrapPossible(at(300, 50, 150), at(305, 60, 160), 400, range(306, 346))).toBeUndefined();
    expect(wrapPossible(at(300, 50, 150), at(305, 60, 160), 400, range(306, 346), 0n)).toMatch(/40 numbers held, 50 forks earlier in the window/);
    // In the first interval (the window's own start) there is no earlier fork.
    expect(wrapPossible(at(300, 50, 150), at(305, 60, 160), 400, range(306, 346), 50n)).toBeUndefined();
  });

  it('without thread listings the walk does not see every number held, and the host task count bounds them', () => {
    expect(wrapPossible(at(300, 0, 95), at(305, 10, 105), 400, undefined)).toMatch(/95 tasks on the host/);
    expect(wrapPossible(at(300, 0, 50), at(305, 10, 60), 400, undefined)).toBeUndefined();
  });

  it('on a host with a large pid_max, a few forks cannot go round', () => {
    expect(wrapPossible(at(1200, 0, 500), at(1230, 30, 520), 4_194_304, range(1, 500))).toBeUndefined();
    expect(wrapPossible(at(1200, 0, 500), at(1230, 30, 520), 4_194_304, undefined)).toBeUndefined();
  });
});
