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
