// The Perfetto writer on a hand-built snapshot: the bytes are decoded with
// proto/perfetto_subset.proto through protobufjs, independently of the
// writer's own loader, and every field is compared with what the snapshot
// says. Times sit above 2^53 ns (about 104 days of uptime), where a JS number
// would round them.

import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { PidgenError } from '../../src/errors.js';
import { appendPerfetto, BUILTIN_CLOCK_BOOTTIME, PIDGEN_SEQUENCE_ID, toPerfetto, type PerfettoOptions } from '../../src/output/perfetto.js';
import { encodeTrace, long, packetsOf } from '../helpers/perfetto-trace.js';
import type { ProcessEntry, Snapshot } from '../../src/model/snapshot.js';

const PROTO = join(import.meta.dirname, '..', '..', 'proto', 'perfetto_subset.proto');
const root = new protobuf.Root().loadSync(PROTO, { keepCase: true });
const TraceType = root.lookupType('perfetto.protos.Trace');

// Decoded shapes (toObject with longs as decimal strings; absent fields absent).
interface ProcessJson {
  pid?: number;
  ppid?: number;
  cmdline?: string[];
  cmdline_is_comm?: boolean;
  uid?: number;
  nspid?: number[];
  process_start_from_boot?: string;
  is_kthread?: boolean;
}
interface ThreadJson {
  tid?: number;
  tgid?: number;
  name?: string;
  nstid?: number[];
}
interface EventJson {
  timestamp?: string;
  pid?: number;
  task_newtask?: { pid?: number; comm?: string; clone_flags?: string };
  sched_process_free?: { pid?: number; comm?: string };
}
interface PacketJson {
  timestamp?: string;
  timestamp_clock_id?: number;
  trusted_packet_sequence_id?: number;
  process_tree?: { processes?: ProcessJson[]; threads?: ThreadJson[]; collection_end_timestamp?: string };
  ftrace_events?: {
    cpu?: number;
    event?: EventJson[];
    ftrace_clock?: number;
    ftrace_timestamp?: string;
    boot_timestamp?: string;
    previous_bundle_end_timestamp?: string;
    last_read_event_timestamp?: string;
  };
  clock_snapshot?: { clocks?: { clock_id?: number; timestamp?: string }[]; primary_trace_clock?: number };
  service_event?: { tracing_started?: boolean; read_tracing_buffers_completed?: boolean };
}

function decode(bytes: Uint8Array): PacketJson[] {
  const trace = TraceType.toObject(TraceType.decode(bytes), { longs: String }) as { packet?: PacketJson[] };
  return trace.packet ?? [];
}

const START = 9_007_199_254_800_000n; // > 2^53
const END = START + 12_345_678n;
const TICK = 10_000_000n;

// The clocks a standalone trace relates (given, so the output is fixed).
const CLOCKS = { boottimeNs: END + 500n, realtimeNs: 1_764_806_400_123_000_000n, monotonicNs: END - 2_000_000_000n };
const write = (snapshot: Snapshot, options: PerfettoOptions = {}) => toPerfetto(snapshot, { clocks: CLOCKS, ...options });
const CLOCK_PACKET: PacketJson = {
  timestamp: String(CLOCKS.boottimeNs),
  timestamp_clock_id: 6,
  trusted_packet_sequence_id: PIDGEN_SEQUENCE_ID,
  clock_snapshot: {
    clocks: [
      { clock_id: 6, timestamp: String(CLOCKS.boottimeNs) },
      { clock_id: 1, timestamp: String(CLOCKS.realtimeNs) },
      { clock_id: 3, timestamp: String(CLOCKS.monotonicNs) },
    ],
    primary_trace_clock: 6,
  },
};

function snapshotOf(processes: ProcessEntry[], reused: Snapshot['reused'] = []): Snapshot {
  return {
    schema: 'pidgen.snapshot/2',
    host: { hostname: 'builder', kernel: '6.18.0-1-amd64', bootId: '0b6f2c1e-6a39-4c33-9d55-3a7c2e5f1d20' },
    pidNamespace: { inum: 4026531836 },
    clock: 'boottime',
    window: { startNs: START, endNs: END },
    source: 'procfs',
    guard: { kind: 'bpf', attach: 'tp_btf/task_newtask', generationBefore: 7n, generationAfter: 7n },
    coherent: true,
    attempts: 1,
    reused,
    exited: [],
    processes,
    stats: { tasks: processes.length, durationNs: END - START },
  };
}

/** A tree with the cases a writer gets wrong: a kernel thread, a zombie, threads, an unreadable entry. */
function testTree(): ProcessEntry[] {
  return [
    {
      pid: 1, ppid: 0, uid: 0, comm: 'systemd', cmdline: ['/sbin/init', 'splash'], state: 'S',
      startNs: 2_340_000_001n, startExact: true, kernelThread: false,
      threads: [{ tid: 1, comm: 'systemd', state: 'S', startNs: 2_340_000_000n }],
    },
    {
      pid: 2, ppid: 0, uid: 0, comm: 'kthreadd', cmdline: [], state: 'S',
      startNs: 0n, startExact: false, kernelThread: true, // early kthreads really start at tick 0
      threads: [{ tid: 2, comm: 'kthreadd', state: 'S', startNs: 0n }],
    },
    {
      pid: 1200, ppid: 1, uid: 1000, comm: 'server', cmdline: ['/usr/bin/server', '--port', '80 80'], state: 'S',
      startNs: START - 5_000_000_000n, startExact: true, kernelThread: false,
      threads: [
        { tid: 1200, comm: 'server', state: 'S', startNs: START - 5_000_000_000n },
        { tid: 1201, comm: 'worker', state: 'R', startNs: START - 4_000_000_000n },
        { tid: 1202, comm: 'io', state: 'D', startNs: START - 3_000_000_000n },
      ],
    },
    {
      // A zombie: empty argv; a uid above 2^31 - 1 (int32 on the wire).
      pid: 1300, ppid: 1200, uid: 4_294_967_294, comm: 'defunct-child', cmdline: [], state: 'Z',
      startNs: START - 1_000_000_000n, startExact: false, kernelThread: false,
      threads: [{ tid: 1300, comm: 'defunct-child', state: 'Z', startNs: START - 1_000_000_000n }],
    },
    {
      // hidepid=: only the number is known.
      pid: 1400, ppid: 0, uid: null, comm: '', cmdline: [], state: '?',
      startNs: 0n, startExact: false, kernelThread: false, threads: [],
      unreadable: ['stat', 'status', 'cmdline', 'threads', 'uid'],
    },
  ];
}

const BASELINE_PROCESSES: ProcessJson[] = [
  { pid: 1, ppid: 0, cmdline: ['/sbin/init', 'splash'], uid: 0, process_start_from_boot: '2340000001', is_kthread: false },
  { pid: 2, ppid: 0, cmdline: ['kthreadd'], cmdline_is_comm: true, uid: 0, process_start_from_boot: '0', is_kthread: true },
  {
    pid: 1200, ppid: 1, cmdline: ['/usr/bin/server', '--port', '80 80'], uid: 1000,
    process_start_from_boot: String(START - 5_000_000_000n), is_kthread: false,
  },
  {
    pid: 1300, ppid: 1200, cmdline: ['defunct-child'], cmdline_is_comm: true, uid: -2,
    process_start_from_boot: String(START - 1_000_000_000n), is_kthread: false,
  },
  { pid: 1400, cmdline: [''], cmdline_is_comm: true },
];

const BASELINE_THREADS: ThreadJson[] = [
  { tid: 1, tgid: 1, name: 'systemd' },
  { tid: 2, tgid: 2, name: 'kthreadd' },
  { tid: 1200, tgid: 1200, name: 'server' },
  { tid: 1201, tgid: 1200, name: 'worker' },
  { tid: 1202, tgid: 1200, name: 'io' },
  { tid: 1300, tgid: 1300, name: 'defunct-child' },
];

describe('perfetto output: the .proto is upstream Perfetto', () => {
  it('every message and field has the upstream field number and type (renumbering breaks every reader)', () => {
    const expected: Record<string, Record<string, [number, string, 'optional' | 'repeated']>> = {
      'perfetto.protos.Trace': { packet: [1, 'TracePacket', 'repeated'] },
      'perfetto.protos.TracePacket': {
        timestamp: [8, 'uint64', 'optional'],
        timestamp_clock_id: [58, 'uint32', 'optional'],
        process_tree: [2, 'ProcessTree', 'optional'],
        ftrace_events: [1, 'FtraceEventBundle', 'optional'],
        clock_snapshot: [6, 'ClockSnapshot', 'optional'],
        service_event: [69, 'TracingServiceEvent', 'optional'],
        trusted_packet_sequence_id: [10, 'uint32', 'optional'],
      },
      'perfetto.protos.ProcessTree': {
        processes: [1, 'Process', 'repeated'],
        threads: [2, 'Thread', 'repeated'],
        collection_end_timestamp: [3, 'uint64', 'optional'],
      },
      'perfetto.protos.ProcessTree.Process': {
        pid: [1, 'int32', 'optional'],
        ppid: [2, 'int32', 'optional'],
        cmdline: [3, 'string', 'repeated'],
        uid: [5, 'int32', 'optional'],
        nspid: [6, 'int32', 'repeated'],
        process_start_from_boot: [7, 'uint64', 'optional'],
        is_kthread: [8, 'bool', 'optional'],
        cmdline_is_comm: [9, 'bool', 'optional'],
      },
      'perfetto.protos.ProcessTree.Thread': {
        tid: [1, 'int32', 'optional'],
        name: [2, 'string', 'optional'],
        tgid: [3, 'int32', 'optional'],
        nstid: [4, 'int32', 'repeated'],
      },
      'perfetto.protos.ClockSnapshot': {
        clocks: [1, 'Clock', 'repeated'],
        primary_trace_clock: [2, 'BuiltinClock', 'optional'],
      },
      'perfetto.protos.ClockSnapshot.Clock': {
        clock_id: [1, 'uint32', 'optional'],
        timestamp: [2, 'uint64', 'optional'],
        is_incremental: [3, 'bool', 'optional'],
        unit_multiplier_ns: [4, 'uint64', 'optional'],
      },
      'perfetto.protos.TracingServiceEvent': {
        all_data_sources_started: [1, 'bool', 'optional'],
        tracing_started: [2, 'bool', 'optional'],
        all_data_sources_flushed: [3, 'bool', 'optional'],
        read_tracing_buffers_completed: [4, 'bool', 'optional'],
        tracing_disabled: [5, 'bool', 'optional'],
      },
      'perfetto.protos.FtraceEventBundle': {
        cpu: [1, 'uint32', 'optional'],
        event: [2, 'FtraceEvent', 'repeated'],
        lost_events: [3, 'bool', 'optional'],
        ftrace_clock: [5, 'FtraceClock', 'optional'],
        ftrace_timestamp: [6, 'int64', 'optional'],
        boot_timestamp: [7, 'int64', 'optional'],
        last_read_event_timestamp: [9, 'uint64', 'optional'],
        previous_bundle_end_timestamp: [10, 'uint64', 'optional'],
      },
      'perfetto.protos.FtraceEvent': {
        timestamp: [1, 'uint64', 'optional'],
        pid: [2, 'uint32', 'optional'],
        task_newtask: [235, 'TaskNewtaskFtraceEvent', 'optional'],
        sched_process_free: [240, 'SchedProcessFreeFtraceEvent', 'optional'],
      },
      'perfetto.protos.TaskNewtaskFtraceEvent': {
        pid: [1, 'int32', 'optional'],
        comm: [2, 'string', 'optional'],
        clone_flags: [3, 'uint64', 'optional'],
        oom_score_adj: [4, 'int32', 'optional'],
      },
      'perfetto.protos.SchedProcessFreeFtraceEvent': {
        comm: [1, 'string', 'optional'],
        pid: [2, 'int32', 'optional'],
        prio: [3, 'int32', 'optional'],
      },
    };
    for (const [typeName, fields] of Object.entries(expected)) {
      const type = root.lookupType(typeName);
      expect(Object.keys(type.fields).sort(), typeName).toEqual(Object.keys(fields).sort());
      for (const [name, [id, fieldType, label]] of Object.entries(fields)) {
        const field = type.fields[name]!;
        expect([field.id, field.type, field.repeated ? 'repeated' : 'optional'], `${typeName}.${name}`).toEqual([id, fieldType, label]);
        // proto2: repeated scalars are not packed unless the .proto says so.
        if (field.repeated) expect(field.packed, `${typeName}.${name} packed`).toBe(false);
      }
    }
    expect(root.lookupEnum('perfetto.protos.BuiltinClock').values.BUILTIN_CLOCK_BOOTTIME).toBe(BUILTIN_CLOCK_BOOTTIME);
    expect(root.lookupEnum('perfetto.protos.FtraceClock').values).toEqual({
      FTRACE_CLOCK_UNSPECIFIED: 0,
      FTRACE_CLOCK_UNKNOWN: 1,
      FTRACE_CLOCK_GLOBAL: 2,
      FTRACE_CLOCK_LOCAL: 3,
      FTRACE_CLOCK_MONO_RAW: 4,
    });
  });
});

const treesOf = (packets: PacketJson[]) => packets.filter((p) => p.process_tree);
const eventsOf = (packets: PacketJson[]) => packets.flatMap((p) => p.ftrace_events?.event ?? []);

describe('perfetto output: the process tree', () => {
  it('a ClockSnapshot first (BOOTTIME primary, with REALTIME and MONOTONIC), then one BOOTTIME ProcessTree at the window start holding every process and thread, field for field', () => {
    const packets = decode(write(snapshotOf(testTree())));
    expect(packets).toEqual([
      CLOCK_PACKET,
      {
        timestamp: String(START),
        timestamp_clock_id: 6,
        trusted_packet_sequence_id: PIDGEN_SEQUENCE_ID,
        process_tree: { processes: BASELINE_PROCESSES, threads: BASELINE_THREADS, collection_end_timestamp: String(END) },
      },
    ]);
  });

  it('without clocks given, the ClockSnapshot is read when the trace is written, and BOOTTIME is near the others', () => {
    const before = process.hrtime.bigint();
    const packets = decode(toPerfetto(snapshotOf(testTree())));
    const clocks = new Map(packets[0]!.clock_snapshot!.clocks!.map((c) => [c.clock_id, BigInt(c.timestamp!)]));
    expect([...clocks.keys()]).toEqual([6, 1, 3]);
    const monotonic = clocks.get(3)!;
    expect(monotonic).toBeGreaterThanOrEqual(before);
    // BOOTTIME runs ahead of MONOTONIC by the time the host spent suspended, never behind.
    expect(clocks.get(6)!).toBeGreaterThanOrEqual(monotonic - 1_000_000n);
    expect(Number(clocks.get(1)! / 1_000_000n)).toBeLessThanOrEqual(Date.now());
  });

  it('a uid above 2^31 - 1 comes back as the same uid when read as uint32, as trace_processor does', () => {
    const zombie = treesOf(decode(write(snapshotOf(testTree()))))[0]?.process_tree?.processes?.find((p) => p.pid === 1300);
    expect(zombie?.uid! >>> 0).toBe(4_294_967_294);
  });

  it('in a child PID namespace, pid/tid are root numbers from rootPidOf and nspid/nstid hold the scanning namespace numbers', () => {
    const unmapped: number[] = [];
    const rootPidOf = (nsPid: number) => (nsPid === 1202 || nsPid === 1400 ? undefined : 700_000 + nsPid);
    const trees = treesOf(decode(write(snapshotOf(testTree()), { rootPidOf, onUnmappedPid: (pid) => unmapped.push(pid) })));
    expect(trees).toHaveLength(1);
    const tree = trees[0]!.process_tree!;
    expect(tree.processes).toEqual([
      // ppid 0 inside a child namespace: the parent is outside it, so unknown.
      { pid: 700_001, cmdline: ['/sbin/init', 'splash'], uid: 0, nspid: [1], process_start_from_boot: '2340000001', is_kthread: false },
      { pid: 700_002, cmdline: ['kthreadd'], cmdline_is_comm: true, uid: 0, nspid: [2], process_start_from_boot: '0', is_kthread: true },
      {
        pid: 701_200, ppid: 700_001, cmdline: ['/usr/bin/server', '--port', '80 80'], uid: 1000, nspid: [1200],
        process_start_from_boot: String(START - 5_000_000_000n), is_kthread: false,
      },
      {
        pid: 701_300, ppid: 701_200, cmdline: ['defunct-child'], cmdline_is_comm: true, uid: -2, nspid: [1300],
        process_start_from_boot: String(START - 1_000_000_000n), is_kthread: false,
      },
      // 1400 has no root number: left out rather than written under a wrong one.
    ]);
    expect(tree.threads).toEqual([
      { tid: 700_001, tgid: 700_001, name: 'systemd', nstid: [1] },
      { tid: 700_002, tgid: 700_002, name: 'kthreadd', nstid: [2] },
      { tid: 701_200, tgid: 701_200, name: 'server', nstid: [1200] },
      { tid: 701_201, tgid: 701_200, name: 'worker', nstid: [1201] },
      { tid: 701_300, tgid: 701_300, name: 'defunct-child', nstid: [1300] },
    ]);
    expect(unmapped.sort((a, b) => a - b)).toEqual([1202, 1400]);
  });

  it('rejects a time outside the unsigned 64-bit range instead of writing a wrapped one', () => {
    const processes = testTree();
    processes[0]!.startNs = -1n;
    expect(() => write(snapshotOf(processes))).toThrow(PidgenError);
    expect(() => write(snapshotOf(processes))).toThrow(/startNs is -1/);
  });
});

const T_PROC = START + 2_000_000n; // 1600 went to a new process (exact start)
const T_THREAD = START + 4_500_000n; // 1203 went to a new thread of 1200
const T_GONE = START + 6_000_000n; // 1700 went to a task that is not in the snapshot
const T_OLD = START + 8_000_000n; // 1800 is the old holder, read before its number moved on
const T_KTHREAD = START + 9_000_000n; // 1900 went to a new kernel thread
const T_EXITED_THREAD = START + 9_500_000n; // 1205 went to a thread of 1200 that exited in the window

function reusedSnapshot(): Snapshot {
  const processes = testTree();
  processes[2]!.threads.push({ tid: 1203, comm: 'reloader', state: 'S', startNs: (T_THREAD / TICK) * TICK });
  processes.push(
    {
      pid: 1600, ppid: 1200, uid: 1000, comm: 'sleep', cmdline: ['sleep', '1'], state: 'S',
      startNs: T_PROC, startExact: true, kernelThread: false,
      threads: [{ tid: 1600, comm: 'sleep', state: 'S', startNs: (T_PROC / TICK) * TICK }],
    },
    {
      pid: 1800, ppid: 1, uid: 0, comm: 'old', cmdline: ['old'], state: 'S',
      startNs: START - 7_000_000_000n, startExact: true, kernelThread: false,
      threads: [{ tid: 1800, comm: 'old', state: 'S', startNs: START - 7_000_000_000n }],
    },
    {
      pid: 1900, ppid: 2, uid: 0, comm: 'kworker/0:3', cmdline: [], state: 'I',
      startNs: T_KTHREAD, startExact: true, kernelThread: true,
      threads: [{ tid: 1900, comm: 'kworker/0:3', state: 'I', startNs: (T_KTHREAD / TICK) * TICK }],
    },
  );
  // Sorted by pid, as the snapshot writes them, not by time. `holder` is
  // the entry that is the new task, as the algorithm records it: none for
  // 1700 (the new task is gone), 1800 (the entry is the old holder) and
  // 1205 (a thread that came and went).
  const snapshot = snapshotOf(processes, [
    { pid: 1203, atNs: T_THREAD, holder: processes[2]!.pid },
    { pid: 1205, atNs: T_EXITED_THREAD },
    { pid: 1600, atNs: T_PROC, holder: 1600 },
    { pid: 1700, atNs: T_GONE },
    { pid: 1800, atNs: T_OLD },
    { pid: 1900, atNs: T_KTHREAD, holder: 1900 },
  ]);
  snapshot.exited.push({ pid: 1200, tid: 1205, comm: 'flusher', startNs: T_EXITED_THREAD, exitNs: T_EXITED_THREAD + 100_000n });
  return snapshot;
}

const tree = (ts: bigint, processes: ProcessJson[] | undefined, threads: ThreadJson[]): PacketJson => ({
  timestamp: String(ts),
  timestamp_clock_id: 6,
  trusted_packet_sequence_id: PIDGEN_SEQUENCE_ID,
  process_tree: { ...(processes ? { processes } : {}), threads, collection_end_timestamp: String(END) },
});
const free = (ts: bigint, pid: number): EventJson => ({ timestamp: String(ts), pid, sched_process_free: { pid } });
const BASELINE_WITH_OLD = tree(
  START,
  [
    ...BASELINE_PROCESSES,
    { pid: 1800, ppid: 1, cmdline: ['old'], uid: 0, process_start_from_boot: String(START - 7_000_000_000n), is_kthread: false },
  ],
  [...BASELINE_THREADS, { tid: 1800, tgid: 1800, name: 'old' }],
);
const NEW_1600 = (ts: bigint) =>
  tree(ts, [{ pid: 1600, ppid: 1200, cmdline: ['sleep', '1'], uid: 1000, process_start_from_boot: String(T_PROC), is_kthread: false }], [
    { tid: 1600, tgid: 1600, name: 'sleep' },
  ]);
const NEW_1203 = (ts: bigint) => tree(ts, undefined, [{ tid: 1203, tgid: 1200, name: 'reloader' }]);
const NEW_1900 = (ts: bigint) =>
  tree(
    ts,
    [{ pid: 1900, ppid: 2, cmdline: ['kworker/0:3'], cmdline_is_comm: true, uid: 0, process_start_from_boot: String(T_KTHREAD), is_kthread: true }],
    [{ tid: 1900, tgid: 1900, name: 'kworker/0:3' }],
  );

describe('perfetto output: PID reuse inside the window (standalone)', () => {
  it('splits each reused number at atNs: the old holder freed 1 ns before, the new holder described at atNs', () => {
    const packets = decode(write(reusedSnapshot()));
    expect(packets).toEqual([
      CLOCK_PACKET,
      // trace_processor's EndThread for each: the old thread (and, for a
      // main thread, its process) ends, the number is forgotten, and the next
      // description of it starts a fresh process or thread.
      {
        timestamp: String(T_PROC - 1n),
        timestamp_clock_id: 6,
        trusted_packet_sequence_id: PIDGEN_SEQUENCE_ID,
        ftrace_events: {
          cpu: 0,
          event: [
            free(T_PROC - 1n, 1600),
            free(T_THREAD - 1n, 1203),
            free(T_GONE - 1n, 1700),
            free(T_OLD - 1n, 1800),
            free(T_KTHREAD - 1n, 1900),
            free(T_EXITED_THREAD - 1n, 1205),
          ],
        },
      },
      // Before any reuse: everyone who held their number all window, and the
      // old holder of 1800, read before 1800 moved on.
      BASELINE_WITH_OLD,
      NEW_1600(T_PROC),
      NEW_1203(T_THREAD),
      NEW_1900(T_KTHREAD),
    ]);
  });

  it('writes no task_newtask (each would open a Runnable thread state nothing closes) and no event names pid 0', () => {
    const events = eventsOf(decode(write(reusedSnapshot())));
    expect(events.length).toBeGreaterThan(0);
    expect(events.filter((e) => e.task_newtask)).toEqual([]);
    expect(events.filter((e) => !e.pid)).toEqual([]);
  });

  it('in a child namespace the synthesized events name root-namespace tasks too', () => {
    const rootPidOf = (nsPid: number) => 700_000 + nsPid;
    const events = eventsOf(decode(write(reusedSnapshot(), { rootPidOf })));
    expect(events.map((e) => e.sched_process_free?.pid)).toEqual([701_600, 701_203, 701_700, 701_800, 701_900, 701_205]);
  });

  it('a number listed twice in reused is freed once', () => {
    const snapshot = reusedSnapshot();
    snapshot.reused.push({ pid: 1600, atNs: T_PROC });
    const frees = eventsOf(decode(write(snapshot))).filter((e) => e.sched_process_free?.pid === 1600);
    expect(frees).toHaveLength(1);
  });
});

describe('perfetto output: adding a baseline to a recorded trace', () => {
  // When the recording's tracing started, and where its per-cpu data is
  // valid from (CPU 1 starts later than CPU 0).
  const TRACING_STARTED = START - 50_000_000n;
  const CPU0_VALID = START - 40_000_000n;
  const CPU1_VALID = START - 30_000_000n;
  // The kernel's own task_newtask for 1600 and for 1700, a few µs after
  // their start_boottime, as copy_process() fires it.
  const KERNEL_1600 = T_PROC + 7_000n;
  const KERNEL_1700 = T_GONE + 5_000n;
  // A recorded trace's packet this writer does not model: trace_stats
  // (TracePacket field 35), opaque bytes here.
  const foreignPacket = Uint8Array.from([0x0a, 0x06, 0x9a, 0x02, 0x03, 0x08, 0x01, 0x10]);

  const ns = (v: bigint) => long(v);
  const RECORDER_SEQ = 1;
  function recording(options: { clockSnapshot?: boolean; ftraceClock?: { clock: number; ftraceNs: bigint; bootNs: bigint } } = {}): Uint8Array {
    const clock = options.ftraceClock;
    const raw = (boot: bigint) => (clock ? boot - clock.bootNs + clock.ftraceNs : boot);
    const bundleClock = clock ? { ftrace_clock: clock.clock, ftrace_timestamp: long(clock.ftraceNs), boot_timestamp: long(clock.bootNs) } : {};
    const packets: object[] = [
      // traced's preamble: something first, then the clocks.
      { trusted_packet_sequence_id: RECORDER_SEQ, service_event: { all_data_sources_started: true }, timestamp: ns(TRACING_STARTED + 10n) },
    ];
    if (options.clockSnapshot !== false) {
      packets.push({
        trusted_packet_sequence_id: RECORDER_SEQ,
        timestamp: ns(TRACING_STARTED),
        clock_snapshot: {
          clocks: [
            { clock_id: 6, timestamp: ns(TRACING_STARTED) },
            { clock_id: 3, timestamp: ns(TRACING_STARTED - 900_000_000n) },
            { clock_id: 1, timestamp: ns(1_764_806_400_000_000_000n) },
          ],
          primary_trace_clock: 6,
        },
      });
    }
    packets.push(
      { trusted_packet_sequence_id: RECORDER_SEQ, timestamp: ns(TRACING_STARTED), service_event: { tracing_started: true } },
      {
        trusted_packet_sequence_id: RECORDER_SEQ,
        ftrace_events: {
          cpu: 0,
          ...bundleClock,
          previous_bundle_end_timestamp: long(raw(CPU0_VALID)),
          event: [
            { timestamp: long(raw(KERNEL_1600)), pid: 1200, task_newtask: { pid: 1600, comm: 'server', clone_flags: long(17n), oom_score_adj: 0 } },
          ],
        },
      },
      {
        trusted_packet_sequence_id: RECORDER_SEQ,
        ftrace_events: {
          cpu: 1,
          ...bundleClock,
          previous_bundle_end_timestamp: long(raw(CPU1_VALID)),
          event: [{ timestamp: long(raw(KERNEL_1700)), pid: 1201, task_newtask: { pid: 1700, comm: 'worker', clone_flags: long(17n) } }],
        },
      },
      { trusted_packet_sequence_id: RECORDER_SEQ, timestamp: ns(END + 10_000_000n), service_event: { read_tracing_buffers_completed: true } },
    );
    const encoded = encodeTrace(packets);
    const bytes = new Uint8Array(encoded.length + foreignPacket.length);
    bytes.set(encoded, 0);
    bytes.set(foreignPacket, encoded.length);
    return bytes;
  }

  const pidgens = (packets: PacketJson[]) => packets.filter((p) => p.trusted_packet_sequence_id === PIDGEN_SEQUENCE_ID);

  it("the recording's ClockSnapshot stays the first; pidgen adds none, and its packets go right after it", () => {
    const existing = recording();
    const combined = decode(appendPerfetto(existing, reusedSnapshot()));
    const clockSnapshots = combined.flatMap((p, i) => (p.clock_snapshot ? [i] : []));
    expect(clockSnapshots).toEqual([1]);
    expect(combined[1]!.trusted_packet_sequence_id).toBe(RECORDER_SEQ);
    // Everything of pidgen's sits between the ClockSnapshot and the
    // recording's first data, ahead of its first flush point.
    const mine = combined.flatMap((p, i) => (p.trusted_packet_sequence_id === PIDGEN_SEQUENCE_ID ? [i] : []));
    expect(mine[0]).toBe(2);
    expect(mine).toEqual(mine.map((_, k) => 2 + k));
  });

  it("the recording's packets come out unchanged, byte for byte, in their order, and the input is not modified", () => {
    const existing = recording();
    const before = Uint8Array.from(existing);
    const combined = appendPerfetto(existing, reusedSnapshot());
    expect(existing).toEqual(before);
    const recorded = packetsOf(existing).map((p) => Buffer.from(p).toString('hex'));
    const kept = packetsOf(combined)
      .map((p) => Buffer.from(p).toString('hex'))
      .filter((hex) => recorded.includes(hex));
    expect(kept).toEqual(recorded);
    expect(packetsOf(combined)).toHaveLength(recorded.length + pidgens(decode(combined)).length);
    expect(decode(combined).at(-1)).toEqual({}); // the trace_stats packet: kept, only unknown to this subset
  });

  it("each hand-over has exactly one task_newtask: the kernel's where the recording has it, else pidgen's, never from pid 0", () => {
    const combined = decode(appendPerfetto(recording(), reusedSnapshot()));
    const newtasks = eventsOf(combined).filter((e) => e.task_newtask);
    const count = (pid: number) => newtasks.filter((e) => e.task_newtask?.pid === pid).length;
    // 1600 and 1700: the kernel's, recorded; 1203, 1205 and 1900: pidgen's.
    for (const pid of [1600, 1700, 1203, 1205, 1900]) expect(count(pid), `task_newtask for ${pid}`).toBe(1);
    expect(eventsOf(pidgens(combined)).filter((e) => e.task_newtask?.pid === 1600 || e.task_newtask?.pid === 1700)).toEqual([]);
    expect(newtasks.filter((e) => !e.pid)).toEqual([]);
    const mine = eventsOf(pidgens(combined));
    expect(mine.filter((e) => e.task_newtask).map((e) => [e.timestamp, e.pid, e.task_newtask])).toEqual([
      // clone(CLONE_THREAD) in 1200: StartNewThread bound to 1200's process.
      [String(T_THREAD), 1200, { pid: 1203, comm: 'reloader', clone_flags: String(0x100 | 0x800 | 0x10000) }],
      // A kernel thread is forked by kthreadd.
      [String(T_KTHREAD), 2, { pid: 1900, comm: 'kworker/0:3', clone_flags: String(0x100 | 0x80_0000) }],
      // A thread that came and went: `exited` names its process.
      [String(T_EXITED_THREAD), 1200, { pid: 1205, comm: 'flusher', clone_flags: String(0x100 | 0x800 | 0x10000) }],
    ]);
    // 1800's new task is unknown and its creator too: the old holder is
    // freed instead, no parent is made up.
    expect(mine.filter((e) => e.sched_process_free)).toEqual([free(T_OLD - 1n, 1800)]);
  });

  it("the creator the log saw makes pidgen's task_newtask, even for a new task that is gone or was reparented, and then nothing is freed", () => {
    const snapshot = reusedSnapshot();
    // 1800's number went to a task that came and went, made by thread 1201
    // of process 1200; 1203's thread was made by 1202, not the leader.
    snapshot.reused.find((r) => r.pid === 1800)!.creator = { pid: 1200, tid: 1201 };
    snapshot.reused.find((r) => r.pid === 1203)!.creator = { pid: 1200, tid: 1202 };
    const mine = eventsOf(pidgens(decode(appendPerfetto(recording(), snapshot))));
    expect(mine.filter((e) => e.task_newtask?.pid === 1800).map((e) => [e.timestamp, e.pid, e.task_newtask?.clone_flags])).toEqual([
      [String(T_OLD), 1201, String(17)],
    ]);
    expect(mine.find((e) => e.task_newtask?.pid === 1203)?.pid).toBe(1202);
    expect(mine.filter((e) => e.sched_process_free)).toEqual([]);
    // Standalone traces still split with frees, creator or not.
    const standalone = eventsOf(decode(write(snapshot)));
    expect(standalone.filter((e) => e.task_newtask)).toEqual([]);
  });

  it("a new holder the kernel's event created is described at window.endNs, on that event's process; pidgen's own, 1 ns after its event", () => {
    const trees = treesOf(pidgens(decode(appendPerfetto(recording(), reusedSnapshot()))));
    expect(trees).toEqual([BASELINE_WITH_OLD, NEW_1203(T_THREAD + 1n), NEW_1900(T_KTHREAD + 1n), NEW_1600(END)]);
  });

  it("pidgen's one bundle is CPU 0's first in the file and carries the recording's CPU-0 previous_bundle_end_timestamp", () => {
    const combined = decode(appendPerfetto(recording(), reusedSnapshot()));
    const cpu0 = combined.filter((p) => p.ftrace_events?.cpu === 0);
    expect(cpu0[0]!.trusted_packet_sequence_id).toBe(PIDGEN_SEQUENCE_ID);
    expect(cpu0[0]!.ftrace_events!.previous_bundle_end_timestamp).toBe(String(CPU0_VALID));
    expect(cpu0[0]!.ftrace_events!.ftrace_clock).toBeUndefined();
    expect(pidgens(combined).filter((p) => p.ftrace_events)).toHaveLength(1);
  });

  it("stamps nothing before the recording's valid ftrace data: a hand-over before it is split where the data becomes valid", () => {
    // 1203 moves to a new thread before CPU 1's data is valid, the latest
    // first-bundle start (trace_processor soft-drops ftrace events before it).
    const snapshot = reusedSnapshot();
    snapshot.window.startNs = START - 100_000_000n;
    const early = START - 35_000_000n;
    snapshot.reused.find((r) => r.pid === 1203)!.atNs = early;
    const mine = pidgens(decode(appendPerfetto(recording(), snapshot)));
    const events = eventsOf(mine);
    for (const e of events) expect(BigInt(e.timestamp!), JSON.stringify(e)).toBeGreaterThanOrEqual(CPU1_VALID);
    expect(events.find((e) => e.task_newtask?.pid === 1203)?.timestamp).toBe(String(CPU1_VALID));
    expect(treesOf(mine).find((t) => t.process_tree?.threads?.some((x) => x.tid === 1203))?.timestamp).toBe(String(CPU1_VALID + 1n));
  });

  it("with another ftrace clock, pidgen's bundle names the same clock and snapshot, and its times are in that clock", () => {
    const ftraceClock = { clock: 4 /* FTRACE_CLOCK_MONO_RAW */, ftraceNs: 5_000_000_000_000n, bootNs: TRACING_STARTED };
    const combined = decode(appendPerfetto(recording({ ftraceClock }), reusedSnapshot()));
    const bundle = pidgens(combined).find((p) => p.ftrace_events)!.ftrace_events!;
    expect([bundle.ftrace_clock, bundle.ftrace_timestamp, bundle.boot_timestamp]).toEqual([4, String(ftraceClock.ftraceNs), String(ftraceClock.bootNs)]);
    const toRaw = (boot: bigint) => String(boot - ftraceClock.bootNs + ftraceClock.ftraceNs);
    expect(bundle.previous_bundle_end_timestamp).toBe(toRaw(CPU0_VALID));
    expect(bundle.event!.find((e) => e.task_newtask?.pid === 1203)?.timestamp).toBe(toRaw(T_THREAD));
    // The kernel's events were recognized through the recording's clock too.
    expect(eventsOf(pidgens(combined)).filter((e) => e.task_newtask?.pid === 1600)).toEqual([]);
  });

  it('a recording without a ClockSnapshot gets the baseline first, and still no ClockSnapshot of pidgen', () => {
    const existing = recording({ clockSnapshot: false });
    const combined = appendPerfetto(existing, reusedSnapshot());
    const packets = decode(combined);
    expect(packets[0]!.trusted_packet_sequence_id).toBe(PIDGEN_SEQUENCE_ID);
    expect(packets.filter((p) => p.clock_snapshot)).toEqual([]);
    expect(Buffer.from(combined.subarray(combined.length - existing.length)).equals(Buffer.from(existing))).toBe(true);
  });

  it('adding to an empty file gives the baseline alone, without a ClockSnapshot', () => {
    const packets = decode(appendPerfetto(new Uint8Array(0), snapshotOf(testTree())));
    expect(packets).toEqual([tree(START, BASELINE_PROCESSES, BASELINE_THREADS)]);
  });

  it('refuses a gzip-compressed, truncated or non-Perfetto file instead of writing a corrupt trace', () => {
    const snapshot = snapshotOf(testTree());
    const expectRefused = (bytes: Uint8Array, message: RegExp) => {
      try {
        appendPerfetto(bytes, snapshot);
        expect.unreachable('appendPerfetto accepted a bad trace');
      } catch (error) {
        expect(error).toBeInstanceOf(PidgenError);
        expect((error as PidgenError).code).toBe('EBADTRACE');
        expect((error as Error).message).toMatch(message);
      }
    };
    expectRefused(Uint8Array.from([0x1f, 0x8b, 0x08, 0x00]), /gzip/);
    const existing = recording();
    expectRefused(existing.subarray(0, existing.length - 1), /truncated/);
    expectRefused(new TextEncoder().encode('{"traceEvents":[]}'), /not a Perfetto protobuf trace/);
  });
});
