// Recorded Perfetto traces for the --append tests: packets encoded with
// proto/perfetto_subset.proto (upstream field numbers), and the top-level
// packet records of a serialized trace cut out as raw bytes, so a test can
// compare a recording's packets byte for byte.
import { join } from 'node:path';
import protobuf from 'protobufjs';

const PROTO = join(import.meta.dirname, '..', '..', 'proto', 'perfetto_subset.proto');
const root = new protobuf.Root().loadSync(PROTO, { keepCase: true });
const TraceType = root.lookupType('perfetto.protos.Trace');
const PacketType = root.lookupType('perfetto.protos.TracePacket');

/** A uint64/int64 for protobufjs, exact above 2^53. */
export function long(value: bigint): { low: number; high: number; unsigned: boolean } {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffff_ffffn) | 0, high: Number(bits >> 32n) | 0, unsigned: true };
}

/** Serializes packets (TracePacket-shaped objects, times as `long()`) as one Trace. */
export function encodeTrace(packets: object[]): Uint8Array {
  for (const packet of packets) {
    const why = PacketType.verify(packet);
    if (why) throw new Error(`test trace packet: ${why}`);
  }
  return TraceType.encode(TraceType.fromObject({ packet: packets })).finish();
}

/** The raw bytes of each top-level `packet` record (tag, length and payload), in file order. */
export function packetsOf(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes[offset] !== 0x0a) throw new Error(`byte ${offset}: not a Trace.packet record`);
    let length = 0;
    let scale = 1;
    let i = offset + 1;
    for (;;) {
      const byte = bytes[i++]!;
      length += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) break;
      scale *= 128;
    }
    out.push(bytes.subarray(offset, i + length));
    offset = i + length;
  }
  return out;
}

/** One kernel event as a recorder saw it, in BOOTTIME. */
export interface RecordedEvent {
  ts: bigint;
  cpu: number;
  /** The task that raised it. */
  pid: number;
  newTask?: { pid: number; comm: string; cloneFlags: bigint };
  free?: { pid: number; comm: string };
}

export const RECORDER_SEQUENCE_ID = 1;

/**
 * A recording laid out as traced writes one: a service event, the
 * ClockSnapshot (BOOTTIME primary), tracing_started, then per-cpu
 * FtraceEventBundles of up to `perBundle` events, each carrying
 * previous_bundle_end_timestamp (the tracing start for a cpu's first
 * bundle, else where its previous bundle ended), and a final
 * read_tracing_buffers_completed.
 */
export function encodeRecording(
  events: readonly RecordedEvent[],
  clocks: { boottimeNs: bigint; monotonicNs: bigint; realtimeNs: bigint },
  endNs: bigint,
  perBundle = 64,
): Uint8Array {
  const seq = { trusted_packet_sequence_id: RECORDER_SEQUENCE_ID };
  const packets: object[] = [
    { ...seq, timestamp: long(clocks.boottimeNs), service_event: { all_data_sources_started: true } },
    {
      ...seq,
      timestamp: long(clocks.boottimeNs),
      clock_snapshot: {
        clocks: [
          { clock_id: 6, timestamp: long(clocks.boottimeNs) },
          { clock_id: 3, timestamp: long(clocks.monotonicNs) },
          { clock_id: 1, timestamp: long(clocks.realtimeNs) },
        ],
        primary_trace_clock: 6,
      },
    },
    { ...seq, timestamp: long(clocks.boottimeNs), service_event: { tracing_started: true } },
  ];
  const byCpu = new Map<number, RecordedEvent[]>();
  for (const e of events) {
    const list = byCpu.get(e.cpu) ?? [];
    list.push(e);
    byCpu.set(e.cpu, list);
  }
  for (const [cpu, list] of [...byCpu].sort((a, b) => a[0] - b[0])) {
    list.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    let previousEnd = clocks.boottimeNs;
    for (let i = 0; i < list.length; i += perBundle) {
      const chunk = list.slice(i, i + perBundle);
      packets.push({
        ...seq,
        ftrace_events: {
          cpu,
          previous_bundle_end_timestamp: long(previousEnd),
          event: chunk.map((e) => ({
            timestamp: long(e.ts),
            pid: e.pid,
            ...(e.newTask
              ? { task_newtask: { pid: e.newTask.pid, comm: e.newTask.comm, clone_flags: long(e.newTask.cloneFlags), oom_score_adj: 0 } }
              : {}),
            ...(e.free ? { sched_process_free: { pid: e.free.pid, comm: e.free.comm, prio: 120 } } : {}),
          })),
        },
      });
      previousEnd = chunk.at(-1)!.ts;
    }
  }
  packets.push({ ...seq, timestamp: long(endNs), service_event: { read_tracing_buffers_completed: true } });
  return encodeTrace(packets);
}
