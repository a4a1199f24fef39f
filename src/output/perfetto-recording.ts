/**
 * What `--append` must know of a recorded Perfetto trace before it adds a
 * baseline to it, read straight from the protobuf wire format (no decoding
 * of packets it does not need, so a trace of hundreds of megabytes costs one
 * pass over its bytes):
 *
 * - where the recording's first ClockSnapshot ends: trace_processor fixes
 *   the trace clock at the first ClockSnapshot (ProtoTraceReader::
 *   ParseClockSnapshot, ClockTracker::SetGlobalClock), and a packet with a
 *   timestamp read before it would fix it first, so the baseline goes right
 *   after it;
 * - the kernel's own `task_newtask` events, by new PID, in BOOTTIME: where
 *   the recording has the event for a hand-over, the baseline must not add
 *   a second one (FtraceParser::ParseTaskNewTask starts a new process for
 *   each);
 * - CPU 0's first FtraceEventBundle: FtraceTokenizer reads
 *   `previous_bundle_end_timestamp` only from a cpu's first bundle, so the
 *   baseline's bundle, which comes first in the file, must carry the
 *   recording's value, in the recording's ftrace clock;
 * - from when trace_processor keeps ftrace events (its default config):
 *   none before `tracing_started` (drop_ftrace_data_before), and none but
 *   into the raw table before the latest first-bundle start over all cpus
 *   (soft_drop_ftrace_data_before, FtraceParser::MaybeOnFirstFtraceEvent).
 */
import { PidgenError } from '../errors.js';

/** BuiltinClock values (protos/perfetto/common/builtin_clock.proto). */
export const BUILTIN_CLOCK_REALTIME = 1;
export const BUILTIN_CLOCK_MONOTONIC = 3;
export const BUILTIN_CLOCK_MONOTONIC_RAW = 5;
export const BUILTIN_CLOCK_BOOTTIME = 6;

/** FtraceClock values (ftrace_event_bundle.proto); UNSPECIFIED is boot. */
const FTRACE_CLOCK_MONO_RAW = 4;

/**
 * An ftrace clock and its offset from BOOTTIME: raw = boottime + offsetNs.
 * trace_processor converts the same way (a clock snapshot per bundle, or
 * the ClockSnapshot's MONOTONIC_RAW for FTRACE_CLOCK_MONO_RAW).
 */
export interface FtraceClockFit {
  /** FtraceClock; 0 (boot) when the bundle names none. */
  ftraceClock: number;
  offsetNs: bigint;
  /** The bundle's own clock snapshot fields, copied to a bundle that must read the same. */
  ftraceTimestamp?: bigint;
  bootTimestamp?: bigint;
}

export interface FirstBundle {
  clock: FtraceClockFit;
  /** As written, in the bundle's ftrace clock. */
  previousBundleEnd?: bigint;
  lastReadEvent?: bigint;
}

export interface RecordingFacts {
  /** Byte offset just past the first ClockSnapshot packet; 0 when there is none. */
  insertAt: number;
  hasClockSnapshot: boolean;
  /** BOOTTIME from which trace_processor parses ftrace events fully; 0 when nothing limits it. */
  ftraceValidFromNs: bigint;
  /** CPU 0's first FtraceEventBundle in file order, when the recording has one. */
  cpu0First?: FirstBundle;
  /** The kernel's task_newtask events: new PID (root namespace) → their BOOTTIME times, ascending. */
  newTasks: Map<number, bigint[]>;
}

/**
 * Reads the facts above. Throws a PidgenError (code `EBADTRACE`) when the
 * bytes are not a plain, complete Perfetto trace: gzip-compressed, another
 * format, or truncated.
 */
export function readRecording(bytes: Uint8Array): RecordingFacts {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    badTrace('the existing trace is gzip-compressed', 'decompress it first (gunzip), then append');
  }
  const facts: RecordingFacts = { insertAt: 0, hasClockSnapshot: false, ftraceValidFromNs: 0n, newTasks: new Map() };
  let clocks: ClockSnapshotFacts | undefined;
  // Bundles and service events are converted once the clocks are known;
  // the first ClockSnapshot may come after some of them.
  const bundles: { cpu: number; bytes: Field }[] = [];
  const started: { ts: bigint; clockId: number | undefined }[] = [];
  const top = new WireReader(bytes, 0, bytes.length, 'the trace');
  while (!top.done()) {
    const at = top.offset;
    const field = top.next();
    if (field.id !== 1 || field.wire !== WIRE_BYTES) {
      badTrace(`byte ${at} is not a Trace.packet field (tag 0x${(bytes[at] ?? 0).toString(16).padStart(2, '0')}); not a Perfetto protobuf trace`);
    }
    const packet = new WireReader(bytes, field.start, field.end, `the packet at byte ${at}`);
    let ts: bigint | undefined;
    let clockId: number | undefined;
    let tracingStarted = false;
    while (!packet.done()) {
      const f = packet.next();
      if (f.id === 8 && f.wire === WIRE_VARINT) ts = f.value;
      else if (f.id === 58 && f.wire === WIRE_VARINT) clockId = Number(f.value);
      else if (f.id === 6 && f.wire === WIRE_BYTES && !clocks) {
        clocks = readClockSnapshot(bytes, f);
        facts.hasClockSnapshot = true;
        facts.insertAt = field.end;
      } else if (f.id === 69 && f.wire === WIRE_BYTES) tracingStarted = readTracingStarted(bytes, f);
      else if (f.id === 1 && f.wire === WIRE_BYTES) bundles.push({ cpu: bundleCpu(bytes, f), bytes: f });
    }
    if (tracingStarted && ts !== undefined) started.push({ ts, clockId });
  }

  const toBoot = (ts: bigint, clockId: number | undefined) => convertToBoot(ts, clockId ?? clocks?.primary ?? BUILTIN_CLOCK_BOOTTIME, clocks);
  let validFrom = 0n;
  for (const s of started) validFrom = max(validFrom, toBoot(s.ts, s.clockId));
  const seenCpu = new Set<number>();
  for (const bundle of bundles) {
    const parsed = readBundle(bytes, bundle.bytes, clocks);
    for (const [pid, ts] of parsed.newTasks) {
      const list = facts.newTasks.get(pid);
      if (list) list.push(ts);
      else facts.newTasks.set(pid, [ts]);
    }
    if (seenCpu.has(bundle.cpu)) continue;
    seenCpu.add(bundle.cpu);
    const start = parsed.first.previousBundleEnd ?? parsed.first.lastReadEvent;
    if (start !== undefined) validFrom = max(validFrom, start - parsed.first.clock.offsetNs);
    if (bundle.cpu === 0) facts.cpu0First = parsed.first;
  }
  for (const list of facts.newTasks.values()) list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  facts.ftraceValidFromNs = validFrom;
  return facts;
}

/**
 * The kernel's task_newtask for a new task numbered `pid` in the root
 * namespace, from `fromNs` (its start_boottime: the kernel fires the event
 * at the end of copy_process(), after it) to `untilNs`; undefined if the
 * recording has none there.
 */
export function recordedNewTask(facts: RecordingFacts, pid: number, fromNs: bigint, untilNs: bigint): bigint | undefined {
  for (const ts of facts.newTasks.get(pid) ?? []) {
    if (ts < fromNs) continue;
    return ts <= untilNs ? ts : undefined;
  }
  return undefined;
}

// --- the wire format -------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

interface Field {
  id: number;
  wire: number;
  /** The varint value (wire type 0). */
  value: bigint;
  /** The payload's bounds (wire type 2). */
  start: number;
  end: number;
}

/** One message's fields, in order, without decoding any payload. */
class WireReader {
  offset: number;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly end: number,
    private readonly what: string,
  ) {
    this.offset = start;
  }

  done(): boolean {
    return this.offset >= this.end;
  }

  next(): Field {
    const tag = this.varint();
    const id = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    const field: Field = { id, wire, value: 0n, start: 0, end: 0 };
    if (wire === WIRE_VARINT) field.value = this.varint();
    else if (wire === WIRE_BYTES) {
      const length = this.varint();
      if (length > BigInt(this.end - this.offset)) {
        badTrace(`${this.what} claims ${length} bytes at byte ${this.offset} but only ${this.end - this.offset} remain; the trace is truncated`);
      }
      field.start = this.offset;
      field.end = this.offset + Number(length);
      this.offset = field.end;
    } else if (wire === WIRE_FIXED64 || wire === WIRE_FIXED32) {
      this.offset += wire === WIRE_FIXED64 ? 8 : 4;
      if (this.offset > this.end) badTrace(`${this.what} is cut off at byte ${this.end}; the trace is truncated`);
    } else badTrace(`${this.what} has wire type ${wire} at byte ${this.offset}; not a Perfetto protobuf trace`);
    return field;
  }

  private varint(): bigint {
    let value = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.offset >= this.end) badTrace(`${this.what} is cut off at byte ${this.offset}; the trace is truncated`);
      const byte = this.bytes[this.offset++]!;
      value |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value;
      shift += 7n;
    }
    return badTrace(`${this.what} has a varint longer than 10 bytes at byte ${this.offset}; not a Perfetto protobuf trace`);
  }
}

function fields(bytes: Uint8Array, f: Field, what: string): WireReader {
  return new WireReader(bytes, f.start, f.end, what);
}

/** A varint read as int64 (two's complement), as proto int64 fields are written. */
function int64(value: bigint): bigint {
  return BigInt.asIntN(64, value);
}

// --- the messages ----------------------------------------------------------

interface ClockSnapshotFacts {
  /** BuiltinClock → timestamp at the snapshot. */
  at: Map<number, bigint>;
  primary: number;
}

function readClockSnapshot(bytes: Uint8Array, f: Field): ClockSnapshotFacts {
  const at = new Map<number, bigint>();
  let primary = BUILTIN_CLOCK_BOOTTIME;
  const snapshot = fields(bytes, f, 'a ClockSnapshot');
  while (!snapshot.done()) {
    const c = snapshot.next();
    if (c.id === 2 && c.wire === WIRE_VARINT) primary = Number(c.value);
    if (c.id !== 1 || c.wire !== WIRE_BYTES) continue;
    let id: number | undefined;
    let ts: bigint | undefined;
    const clock = fields(bytes, c, 'a ClockSnapshot.Clock');
    while (!clock.done()) {
      const k = clock.next();
      if (k.id === 1 && k.wire === WIRE_VARINT) id = Number(k.value);
      else if (k.id === 2 && k.wire === WIRE_VARINT) ts = k.value;
    }
    if (id !== undefined && ts !== undefined) at.set(id, ts);
  }
  return { at, primary };
}

/** A time in `clockId` as BOOTTIME, by the first ClockSnapshot's offsets; unchanged when they are not known. */
function convertToBoot(ts: bigint, clockId: number, clocks: ClockSnapshotFacts | undefined): bigint {
  if (clockId === BUILTIN_CLOCK_BOOTTIME || !clocks) return ts;
  const there = clocks.at.get(clockId);
  const boot = clocks.at.get(BUILTIN_CLOCK_BOOTTIME);
  return there === undefined || boot === undefined ? ts : ts - there + boot;
}

function readTracingStarted(bytes: Uint8Array, f: Field): boolean {
  const event = fields(bytes, f, 'a TracingServiceEvent');
  while (!event.done()) {
    const e = event.next();
    if (e.id === 2 && e.wire === WIRE_VARINT && e.value !== 0n) return true;
  }
  return false;
}

function bundleCpu(bytes: Uint8Array, f: Field): number {
  const bundle = fields(bytes, f, 'an FtraceEventBundle');
  while (!bundle.done()) {
    const b = bundle.next();
    if (b.id === 1 && b.wire === WIRE_VARINT) return Number(b.value);
  }
  // FtraceTokenizer drops a bundle without a cpu; so does this reader.
  return -1;
}

function readBundle(bytes: Uint8Array, f: Field, clocks: ClockSnapshotFacts | undefined): { first: FirstBundle; newTasks: [number, bigint][] } {
  let ftraceClock = 0;
  let ftraceTimestamp: bigint | undefined;
  let bootTimestamp: bigint | undefined;
  let previousBundleEnd: bigint | undefined;
  let lastReadEvent: bigint | undefined;
  const events: Field[] = [];
  const bundle = fields(bytes, f, 'an FtraceEventBundle');
  while (!bundle.done()) {
    const b = bundle.next();
    if (b.wire === WIRE_BYTES && b.id === 2) events.push(b);
    else if (b.wire !== WIRE_VARINT) continue;
    else if (b.id === 5) ftraceClock = Number(b.value);
    else if (b.id === 6) ftraceTimestamp = int64(b.value);
    else if (b.id === 7) bootTimestamp = int64(b.value);
    else if (b.id === 9) lastReadEvent = b.value;
    else if (b.id === 10) previousBundleEnd = b.value;
  }
  const clock: FtraceClockFit = { ftraceClock, offsetNs: 0n };
  if (ftraceClock !== 0 && ftraceTimestamp !== undefined && bootTimestamp !== undefined) {
    clock.offsetNs = ftraceTimestamp - bootTimestamp;
    clock.ftraceTimestamp = ftraceTimestamp;
    clock.bootTimestamp = bootTimestamp;
  } else if (ftraceClock === FTRACE_CLOCK_MONO_RAW && clocks) {
    const raw = clocks.at.get(BUILTIN_CLOCK_MONOTONIC_RAW);
    const boot = clocks.at.get(BUILTIN_CLOCK_BOOTTIME);
    if (raw !== undefined && boot !== undefined) clock.offsetNs = raw - boot;
  }
  const newTasks: [number, bigint][] = [];
  for (const e of events) {
    let ts: bigint | undefined;
    let pid: number | undefined;
    const event = fields(bytes, e, 'an FtraceEvent');
    while (!event.done()) {
      const x = event.next();
      if (x.id === 1 && x.wire === WIRE_VARINT) ts = x.value;
      else if (x.id === 235 && x.wire === WIRE_BYTES) {
        const task = fields(bytes, x, 'a TaskNewtaskFtraceEvent');
        while (!task.done()) {
          const t = task.next();
          if (t.id === 1 && t.wire === WIRE_VARINT) pid = Number(BigInt.asIntN(32, t.value));
        }
      }
    }
    // trace_processor skips the swapper/0 tasks (pid 0) of a boot-time
    // trace, and so does this reader.
    if (ts !== undefined && pid !== undefined && pid > 0) newTasks.push([pid, ts - clock.offsetNs]);
  }
  const first: FirstBundle = { clock };
  if (previousBundleEnd !== undefined) first.previousBundleEnd = previousBundleEnd;
  if (lastReadEvent !== undefined) first.lastReadEvent = lastReadEvent;
  return { first, newTasks };
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function badTrace(why: string, hint?: string): never {
  throw new PidgenError(`append to perfetto trace: ${why}`, {
    code: 'EBADTRACE',
    op: 'append to perfetto trace',
    ...(hint ? { hint } : {}),
  });
}
