// A scripted stand-in for the kernel, for the coherence algorithm's phase
// tests: no root, no addon. The world holds tasks; a fixture-backed source
// reads them as /proc text (real captured files with the pid, name and start
// filled in, parsed by pidgen's own procfs source), and a fake tracker hands
// the algorithm the allocation log the world wrote, each record when the
// test says it arrives (a record can be late, as task_newtask's is).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AllocationEvent, ExitEvent, LogEvent } from '../../src/guard/guard.js';
import { TICK_NS } from '../../src/model/layout.js';
import type { ProcessEntry } from '../../src/model/snapshot.js';
import type { NativeProcessRead } from '../../src/native/addon.js';
import { splitAtWindowEnd, type Checkpoint, type WindowTracker } from '../../src/snapshot/window.js';
import { toProcessEntry } from '../../src/source/procfs.js';
import type { Source } from '../../src/source/source.js';

const REAL = join(import.meta.dirname, '..', 'fixtures', 'proc', 'real');
const SELF_STAT = readFileSync(join(REAL, 'self-stat'), 'utf8');
const STATUS = readFileSync(join(REAL, 'thread-task-status'), 'utf8');
const NAMESPACE = 4026531836;

export interface WorldTask {
  pid: number;
  tgid: number;
  comm: string;
  startNs: bigint;
  /** Read as a zombie (state Z). */
  zombie?: boolean;
}

interface PendingEvent {
  event: LogEvent;
  /** The checkpoint (0-based) from which the record can be drained. */
  due: number;
}

/** /proc/<pid>/stat of a task: the captured file with fields 1, 2 and 22 replaced. */
function statOf(task: WorldTask): Buffer {
  const tail = SELF_STAT.slice(SELF_STAT.lastIndexOf(')') + 2).split(' ');
  tail[19] = String(task.startNs / TICK_NS); // field 22, starttime, in ticks
  if (task.zombie) tail[0] = 'Z'; // field 3, state
  return Buffer.from(`${task.pid} (${task.comm}) ${tail.join(' ')}`);
}

function statusOf(task: WorldTask): Buffer {
  return Buffer.from(
    STATUS.replace(/^Name:.*$/m, `Name:\t${task.comm}`)
      .replace(/^Tgid:.*$/m, `Tgid:\t${task.tgid}`)
      .replace(/^Pid:.*$/m, `Pid:\t${task.pid}`),
  );
}

export class World {
  clockNs = 5_000_000_000_000n;
  readonly tasks = new Map<number, WorldTask>();
  #pending: PendingEvent[] = [];
  #checkpoints = 0;
  /** Numbers handed out since the last checkpoint (what the cursor guard's swept range covers). */
  #swept = new Set<number>();
  /** Runs inside each checkpoint, before the log is drained (the window-end seam). */
  beforeDrain?: (index: number) => void;
  /** Runs at each source re-read, before it reads (a reap right after a checkpoint). */
  beforeReread?: (pids: readonly number[]) => void;
  /** Source calls, for assertions: how many full walks and which pids were re-read. */
  readonly walks: number[] = [];
  readonly rereads: number[][] = [];

  advance(ns = 1_000_000n): bigint {
    this.clockNs += ns;
    return this.clockNs;
  }

  /**
   * A new task takes number `pid`. Its record arrives at the checkpoint
   * `lateBy` checkpoints after the next one (0: the next one).
   */
  spawn(pid: number, comm: string, options: { tgid?: number; lateBy?: number; logged?: boolean } = {}): WorldTask {
    if (this.tasks.has(pid)) throw new Error(`world: ${pid} is taken`);
    const task = { pid, tgid: options.tgid ?? pid, comm, startNs: this.advance() };
    this.tasks.set(pid, task);
    this.#swept.add(pid);
    if (options.logged ?? true) {
      this.#log('new', task, this.#checkpoints + (options.lateBy ?? 0));
    }
    return task;
  }

  #log(kind: 'new' | 'exit', task: WorldTask, due: number, atNs = this.clockNs): void {
    const event: LogEvent = {
      kind,
      inum: NAMESPACE,
      nr: task.pid,
      tgid: task.tgid,
      startNs: task.startNs,
      atNs,
      ino: 0n,
      thread: task.tgid !== task.pid,
      exactStart: true,
      comm: task.comm,
    };
    this.#pending.push({ event, due });
  }

  /** A task that existed long before the window (its record is not in the log). */
  existing(pid: number, comm: string, tgid = pid): WorldTask {
    const task = this.spawn(pid, comm, { tgid, logged: false });
    task.startNs -= 1_000_000_000n;
    return task;
  }

  /** The task exits and is reaped; its exit record is logged at once (do_exit runs before the PID is freed). */
  exit(pid: number): void {
    const task = this.tasks.get(pid);
    if (!task) throw new Error(`world: ${pid} is not alive`);
    this.advance();
    this.#log('exit', task, this.#checkpoints);
    this.tasks.delete(pid);
    this.advance();
  }

  /**
   * The task exits but is not reaped: a zombie, still holding its PID.
   * `atNs` stamps the exit record (default now); `reaped` frees the PID too.
   */
  die(pid: number, options: { atNs?: bigint; reaped?: boolean } = {}): void {
    const task = this.tasks.get(pid);
    if (!task) throw new Error(`world: ${pid} is not alive`);
    this.advance();
    this.#log('exit', task, this.#checkpoints, options.atNs);
    if (options.reaped) this.tasks.delete(pid);
  }

  /** A zombie is reaped: its PID is free. Returns when. */
  reap(pid: number): bigint {
    this.tasks.delete(pid);
    return this.advance();
  }

  /** The number's holder dies and a new task takes the number. */
  handOver(pid: number, comm: string, options: { lateBy?: number } = {}): WorldTask {
    const old = this.tasks.get(pid);
    this.exit(pid);
    return this.spawn(pid, comm, { tgid: old && old.tgid !== old.pid ? old.tgid : pid, ...options });
  }

  #read(pid: number): NativeProcessRead {
    const task = this.tasks.get(pid);
    if (!task) return { pid, openErr: 2 };
    const threads = [...this.tasks.values()].filter((t) => t.tgid === pid).map((t) => ({ tid: t.pid, stat: statOf(t) }));
    return { pid, stat: statOf(task), status: statusOf(task), cmdline: Buffer.from(`${task.comm}\0`), threads };
  }

  #entries(pids: Iterable<number>): ProcessEntry[] {
    const entries: ProcessEntry[] = [];
    for (const pid of pids) {
      const entry = toProcessEntry(this.#read(pid));
      if (entry) entries.push(entry);
    }
    return entries;
  }

  /** The fixture-backed source: the world as /proc shows it. */
  source(): Source {
    return {
      kind: 'procfs',
      listsThreads: true,
      walk: () => {
        this.walks.push(this.#checkpoints);
        const leaders = [...this.tasks.values()].filter((t) => t.tgid === t.pid).map((t) => t.pid);
        return this.#entries(leaders.sort((a, b) => a - b));
      },
      reread: (pids) => {
        this.beforeReread?.(pids);
        this.rereads.push([...pids]);
        return new Map(this.#entries(pids).map((e) => [e.pid, e]));
      },
    };
  }

  /**
   * The fake cursor guard: no log; each checkpoint says which numbers may
   * have been handed out since the previous one (exactly those, as the
   * cursor's range would when it did not go round).
   */
  cursorTracker(): WindowTracker {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const world = this;
    return {
      kind: 'cursor',
      exact: true,
      hasLog: false,
      start: () => {
        world.#swept = new Set();
        return world.advance();
      },
      generation: () => undefined,
      checkpoint(): Checkpoint {
        const index = world.#checkpoints++;
        world.beforeDrain?.(index);
        const endNs = world.advance();
        const swept = world.#swept;
        world.#swept = new Set();
        return { endNs, taken: new Map(), mayBeTaken: (nr) => swept.has(nr) };
      },
      finish: () => {},
    };
  }

  /** The fake BPF tracker: the world's log, drained record by record as each comes due. */
  tracker(): WindowTracker & { lost: boolean } {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const world = this;
    let early: LogEvent[] = [];
    return {
      kind: 'bpf',
      attach: 'tp_btf/task_newtask',
      exact: true,
      hasLog: true,
      lost: false,
      start: () => {
        early = [];
        return world.advance();
      },
      generation: () => 0n,
      checkpoint(): Checkpoint {
        const index = world.#checkpoints++;
        world.beforeDrain?.(index);
        const endNs = world.advance();
        if (this.lost) {
          this.lost = false;
          return { endNs, taken: null, reason: 'allocation log overflowed (1 records lost)' };
        }
        const taken = new Map<number, AllocationEvent[]>();
        const exits = new Map<number, ExitEvent[]>();
        const due = world.#pending.filter((p) => p.due <= index);
        world.#pending = world.#pending.filter((p) => p.due > index);
        // What the real tracker does with a drain: records from after endNs wait for the next checkpoint.
        const { upToEnd, after } = splitAtWindowEnd([...early, ...due.map((p) => p.event)], endNs);
        early = after;
        for (const event of upToEnd) {
          if (event.kind === 'exit') exits.set(event.nr, [...(exits.get(event.nr) ?? []), event as ExitEvent]);
          else taken.set(event.nr, [...(taken.get(event.nr) ?? []), event as AllocationEvent]);
        }
        return { endNs, taken, exits };
      },
      finish: () => {},
    };
  }
}
