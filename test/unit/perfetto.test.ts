// The Perfetto writer on a hand-built snapshot: the bytes are decoded with
// proto/perfetto_subset.proto through protobufjs, independently of the
// writer's own loader, and every field is compared with what the snapshot
// says. Times sit above 2^53 ns (about 104 days of uptime), where a JS number
// would round them.

import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { PidgenError } from '../../src/errors.js';
import { appendPerfetto, BUILTIN_CLOCK_BOOTTIME, PIDGEN_SEQUENCE_ID, toPerfetto } from '../../src/output/perfetto.js';
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
interface PacketJson {
  timestamp?: string;
  timestamp_clock_id?: number;
  trusted_packet_sequence_id?: number;
  process_tree?: { processes?: ProcessJson[]; threads?: ThreadJson[]; collection_end_timestamp?: string };
  ftrace_events?: {
    cpu?: number;
    event?: { timestamp?: string; pid?: number; task_newtask?: { pid?: number; comm?: string; clone_flags?: string } }[];
  };
}

function decode(bytes: Uint8Array): PacketJson[] {
  const trace = TraceType.toObject(TraceType.decode(bytes), { longs: String }) as { packet?: PacketJson[] };
  return trace.packet ?? [];
}

const START = 9_007_199_254_800_000n; // > 2^53
const END = START + 12_345_678n;
const TICK = 10_000_000n;

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
      'perfetto.protos.FtraceEventBundle': { cpu: [1, 'uint32', 'optional'], event: [2, 'FtraceEvent', 'repeated'] },
      'perfetto.protos.FtraceEvent': {
        timestamp: [1, 'uint64', 'optional'],
        pid: [2, 'uint32', 'optional'],
        task_newtask: [235, 'TaskNewtaskFtraceEvent', 'optional'],
      },
      'perfetto.protos.TaskNewtaskFtraceEvent': {
        pid: [1, 'int32', 'optional'],
        comm: [2, 'string', 'optional'],
        clone_flags: [3, 'uint64', 'optional'],
        oom_score_adj: [4, 'int32', 'optional'],
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
  });
});

describe('perfetto output: the process tree', () => {
  it('writes one BOOTTIME ProcessTree packet at the window start holding every process and thread, field for field', () => {
    const packets = decode(toPerfetto(snapshotOf(testTree())));
    expect(packets).toEqual([
      {
        timestamp: String(START),
        timestamp_clock_id: 6,
        trusted_packet_sequence_id: PIDGEN_SEQUENCE_ID,
        process_tree: { processes: BASELINE_PROCESSES, threads: BASELINE_THREADS, collection_end_timestamp: String(END) },
      },
    ]);
  });

  it('a uid above 2^31 - 1 comes back as the same uid when read as uint32, as trace_processor does', () => {
    const zombie = decode(toPerfetto(snapshotOf(testTree())))[0]?.process_tree?.processes?.find((p) => p.pid === 1300);
    expect(zombie?.uid! >>> 0).toBe(4_294_967_294);
  });

  it('in a child PID namespace, pid/tid are root numbers from rootPidOf and nspid/nstid hold the scanning namespace numbers', () => {
    const unmapped: number[] = [];
    const rootPidOf = (nsPid: number) => (nsPid === 1202 || nsPid === 1400 ? undefined : 700_000 + nsPid);
    const packets = decode(toPerfetto(snapshotOf(testTree()), { rootPidOf, onUnmappedPid: (pid) => unmapped.push(pid) }));
    expect(packets).toHaveLength(1);
    const tree = packets[0]!.process_tree!;
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
    expect(() => toPerfetto(snapshotOf(processes))).toThrow(PidgenError);
    expect(() => toPerfetto(snapshotOf(processes))).toThrow(/startNs is -1/);
  });
});

describe('perfetto output: PID reuse inside the window', () => {
  const T_PROC = START + 2_000_000n; // 1600 went to a new process (exact start)
  const T_THREAD = START + 4_500_000n; // 1203 went to a new thread of 1200
  const T_GONE = START + 6_000_000n; // 1700 went to a task that is not in the snapshot
  const T_OLD = START + 8_000_000n; // 1800 is the old holder, read before its number moved on
  const T_KTHREAD = START + 9_000_000n; // 1900 went to a new kernel thread

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
    // 1700 (the new task is gone) and 1800 (the entry is the old holder).
    return snapshotOf(processes, [
      { pid: 1203, atNs: T_THREAD, holder: processes[2]!.pid },
      { pid: 1600, atNs: T_PROC, holder: 1600 },
      { pid: 1700, atNs: T_GONE },
      { pid: 1800, atNs: T_OLD },
      { pid: 1900, atNs: T_KTHREAD, holder: 1900 },
    ]);
  }

  const newtask = (ts: bigint, source: number, task: { pid: number; comm?: string; clone_flags: string }): PacketJson => ({
    timestamp: String(ts),
    timestamp_clock_id: 6,
    trusted_packet_sequence_id: PIDGEN_SEQUENCE_ID,
    ftrace_events: { cpu: 0, event: [{ timestamp: String(ts), pid: source, task_newtask: task }] },
  });
  const tree = (ts: bigint, processes: ProcessJson[] | undefined, threads: ThreadJson[]): PacketJson => ({
    timestamp: String(ts),
    timestamp_clock_id: 6,
    trusted_packet_sequence_id: PIDGEN_SEQUENCE_ID,
    process_tree: { ...(processes ? { processes } : {}), threads, collection_end_timestamp: String(END) },
  });

  it('splits each reused number at atNs: the old view before, a task_newtask at atNs, the new task 1 ns later', () => {
    const packets = decode(toPerfetto(reusedSnapshot()));
    expect(packets).toEqual([
      // Before any reuse: everyone who held their number all window, and the
      // old holder of 1800, read before 1800 moved on.
      tree(
        START,
        [
          ...BASELINE_PROCESSES,
          { pid: 1800, ppid: 1, cmdline: ['old'], uid: 0, process_start_from_boot: String(START - 7_000_000_000n), is_kthread: false },
        ],
        [...BASELINE_THREADS, { tid: 1800, tgid: 1800, name: 'old' }],
      ),
      // fork() by the parent: trace_processor's StartNewProcess.
      newtask(T_PROC, 1200, { pid: 1600, comm: 'sleep', clone_flags: '17' }),
      tree(
        T_PROC + 1n,
        [{ pid: 1600, ppid: 1200, cmdline: ['sleep', '1'], uid: 1000, process_start_from_boot: String(T_PROC), is_kthread: false }],
        [{ tid: 1600, tgid: 1600, name: 'sleep' }],
      ),
      // clone(CLONE_THREAD) in 1200: StartNewThread bound to 1200's process.
      newtask(T_THREAD, 1200, { pid: 1203, comm: 'reloader', clone_flags: String(0x100 | 0x800 | 0x10000) }),
      tree(T_THREAD + 1n, undefined, [{ tid: 1203, tgid: 1200, name: 'reloader' }]),
      // The new holder is not in the snapshot: a fork from an unknown parent.
      newtask(T_GONE, 0, { pid: 1700, clone_flags: '17' }),
      newtask(T_OLD, 0, { pid: 1800, clone_flags: '17' }),
      // A kernel thread is forked by kthreadd.
      newtask(T_KTHREAD, 2, { pid: 1900, comm: 'kworker/0:3', clone_flags: String(0x100 | 0x80_0000) }),
      tree(
        T_KTHREAD + 1n,
        [{ pid: 1900, ppid: 2, cmdline: ['kworker/0:3'], cmdline_is_comm: true, uid: 0, process_start_from_boot: String(T_KTHREAD), is_kthread: true }],
        [{ tid: 1900, tgid: 1900, name: 'kworker/0:3' }],
      ),
    ]);
  });

  it('no description of a reused number comes before its task_newtask, and packets are in time order', () => {
    const packets = decode(toPerfetto(reusedSnapshot()));
    const times = packets.map((p) => BigInt(p.timestamp!));
    expect([...times].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(times);
    for (const number of [1203, 1600, 1900]) {
      const created = packets.findIndex((p) => p.ftrace_events?.event?.[0]?.task_newtask?.pid === number);
      const described = packets.findIndex(
        (p) => p.process_tree?.processes?.some((q) => q.pid === number) || p.process_tree?.threads?.some((t) => t.tid === number),
      );
      expect(created, `task_newtask for ${number}`).toBeGreaterThan(0);
      expect(described, `ProcessTree for ${number}`).toBe(created + 1);
      expect(BigInt(packets[described]!.timestamp!)).toBe(BigInt(packets[created]!.timestamp!) + 1n);
    }
  });

  it('in a child namespace the synthesized events name root-namespace tasks too', () => {
    const rootPidOf = (nsPid: number) => 700_000 + nsPid;
    const packets = decode(toPerfetto(reusedSnapshot(), { rootPidOf }));
    const events = packets.flatMap((p) => p.ftrace_events?.event ?? []);
    expect(events.map((e) => [e.pid, e.task_newtask?.pid])).toEqual([
      [701_200, 701_600],
      [701_200, 701_203],
      [0, 701_700],
      [0, 701_800],
      [700_002, 701_900],
    ]);
  });

  it('a number listed twice in reused yields one task_newtask', () => {
    const snapshot = reusedSnapshot();
    snapshot.reused.push({ pid: 1600, atNs: T_PROC });
    const creations = decode(toPerfetto(snapshot)).filter((p) => p.ftrace_events?.event?.[0]?.task_newtask?.pid === 1600);
    expect(creations).toHaveLength(1);
  });
});

describe('perfetto output: adding a baseline to a recorded trace', () => {
  // A recorded trace's packet this writer does not model: trace_stats
  // (TracePacket field 35), opaque bytes here.
  const foreignPacket = Uint8Array.from([0x0a, 0x06, 0x9a, 0x02, 0x03, 0x08, 0x01, 0x10]);
  function recordedTrace(): Uint8Array {
    const recorded = toPerfetto({ ...snapshotOf(testTree().slice(0, 1)), window: { startNs: END + 1000n, endNs: END + 2000n } });
    const bytes = new Uint8Array(recorded.length + foreignPacket.length);
    bytes.set(recorded, 0);
    bytes.set(foreignPacket, recorded.length);
    return bytes;
  }

  it('the result is the baseline packets followed by the recorded trace, byte for byte, and decodes as one trace', () => {
    const existing = recordedTrace();
    const before = Uint8Array.from(existing);
    const snapshot = snapshotOf(testTree());
    const combined = appendPerfetto(existing, snapshot);
    const baseline = toPerfetto(snapshot);

    expect(Buffer.from(combined).equals(Buffer.concat([baseline, existing]))).toBe(true);
    expect(existing).toEqual(before);

    const packets = decode(combined);
    expect(packets).toHaveLength(decode(baseline).length + decode(existing).length);
    expect(packets.slice(0, 1)).toEqual(decode(baseline));
    expect(packets[1]?.timestamp).toBe(String(END + 1000n));
    expect(packets[2]).toEqual({}); // the trace_stats packet: kept, only unknown to this subset
  });

  it('adding to an empty file gives the baseline alone', () => {
    const snapshot = snapshotOf(testTree());
    expect(Buffer.from(appendPerfetto(new Uint8Array(0), snapshot)).equals(Buffer.from(toPerfetto(snapshot)))).toBe(true);
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
    const existing = recordedTrace();
    expectRefused(existing.subarray(0, existing.length - 1), /truncated/);
    expectRefused(new TextEncoder().encode('{"traceEvents":[]}'), /not a Perfetto protobuf trace/);
  });
});
