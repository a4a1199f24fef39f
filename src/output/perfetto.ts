/**
 * The Perfetto output: a snapshot as a Perfetto `Trace`, for the
 * Perfetto UI and trace_processor, standalone or added to a recorded trace.
 *
 * Written with protobufjs from proto/perfetto_subset.proto, which mirrors
 * upstream field numbers exactly (see its header). Every packet carries a
 * CLOCK_BOOTTIME timestamp (`timestamp_clock_id` = BUILTIN_CLOCK_BOOTTIME),
 * the clock the snapshot was taken in and traced's default trace clock.
 *
 * A standalone trace holds, in timestamp order:
 *
 *   (first)             ClockSnapshot: BOOTTIME, REALTIME and MONOTONIC read
 *                       together, BOOTTIME primary, so the UI can show wall
 *                       time.
 *   window.startNs      ProcessTree: every process and thread of the snapshot
 *                       that held its number for the whole window.
 *   atNs - 1 (a reuse)  FtraceEventBundle with a `sched_process_free` for the
 *                       number: the old holder ends (it freed the number
 *                       before the new task took it).
 *   atNs                ProcessTree: the new holder and its threads.
 *
 * ProcessTree fields follow traced_probes (src/traced/probes/ps/
 * process_stats_data_source.cc): `pid` is the root-namespace PID and `nspid`
 * the PID seen from the scanning namespace; an empty argv (kernel
 * threads, zombies) is written as the comm with `cmdline_is_comm`. Fields the
 * walker could not read (`unreadable`) are left out, never guessed.
 *
 * ## How a reused PID is split, read from trace_processor's code
 *
 * trace_processor resolves the PID or TID named by every event to a process
 * (upid) and thread (utid) at parse time, in timestamp order, through
 * ProcessTracker (src/trace_processor/importers/common/process_tracker.cc):
 *
 * - A ProcessTree never starts a new process for a PID it already knows
 *   (SystemProbesParser::ParseProcessTree: GetOrCreateProcess, then
 *   SetProcessParent on the upid it got). So a second ProcessTree alone
 *   would merge the new holder into the old one.
 * - `sched_process_free` ends the thread (FtraceParser::
 *   ParseSchedProcessFree → ProcessTracker::EndThread): it sets its end
 *   time, drops the TID from `tids_`, and for a main thread ends the
 *   process and drops the PID from `pids_`. The next ProcessTree naming the
 *   number then creates a fresh process and thread. A free opens no thread
 *   state and names no parent, which is why standalone traces use it.
 * - `task_newtask` also splits (ParseTaskNewTask → StartNewProcess, or
 *   StartNewThread with CLONE_THREAD), but it opens a "Runnable" thread
 *   state (ThreadStateTracker::PushNewTaskEvent) that only a later
 *   sched_switch closes, and it names the creating task as the parent.
 *   In a recording the kernel writes it, so `--append` uses it there: the
 *   recording's own event where it has one, else pidgen's, from the task
 *   the allocation log saw fork it (`reused[].creator`; failing that the
 *   ppid, or for a thread its process), never pid 0, which trace_processor
 *   shows as swapper. With no creator at all (a fork into a child namespace
 *   from outside it) the old holder is freed instead.
 *
 * ## --append: what stays as it was
 *
 * appendPerfetto reads the recording first (perfetto-recording.ts) and:
 * - puts the baseline right after the recording's first ClockSnapshot, so
 *   the recording's clock stays the trace clock (the first ClockSnapshot
 *   fixes it; a timestamp read earlier would fix it first), and before the
 *   recording's data, so trace_processor's sorter, which extracts events at
 *   the recorder's flush points and drops events older than what it has
 *   extracted, sorts the baseline in; the recording's packets are not
 *   changed, only moved after pidgen's;
 * - writes all its ftrace events in one CPU-0 bundle that carries the
 *   recording's CPU-0 first-bundle `previous_bundle_end_timestamp` (and
 *   ftrace clock), because only a cpu's first bundle is read for where its
 *   data becomes valid (FtraceTokenizer::TokenizeFtraceBundle);
 * - for a hand-over whose kernel `task_newtask` the recording holds, adds no
 *   event of its own and describes the new holder at window.endNs (or just
 *   after the kernel's event), on the process that event started: the
 *   window is coherent, so the number did not change hands again before
 *   window.endNs;
 * - stamps its ftrace events no earlier than the point from which
 *   trace_processor keeps ftrace events (tracing_started, and the latest
 *   cpu's first valid data), so none is dropped while the ProcessTree after
 *   it is kept. A hand-over inside that span is split where the span ends.
 *
 * Limits, from the same code:
 * - A recording's own `sched_process_free` for the old holder can come after
 *   the new task's creation (the kernel frees the task struct an RCU grace
 *   period after it freed the PID), and then ends the new holder in
 *   trace_processor; pidgen leaves the recording's events as they are.
 * - In a recording without sched_switch events, the Runnable state a
 *   task_newtask opens (the kernel's or pidgen's alike) is closed by nothing.
 */

import { join } from 'node:path';
import protobuf from 'protobufjs';
import { PidgenError } from '../errors.js';
import { packageRoot } from '../package.js';
import type { ProcessEntry, ReusedPid, Snapshot, ThreadEntry } from '../model/snapshot.js';
import { nativeAddon } from '../native/addon.js';
import {
  BUILTIN_CLOCK_MONOTONIC,
  BUILTIN_CLOCK_REALTIME,
  readRecording,
  recordedNewTask,
  type FirstBundle,
  type RecordingFacts,
} from './perfetto-recording.js';

/** Absolute path of the .proto the writer encodes with; it ships in the package. */
export const PERFETTO_PROTO_PATH = join(packageRoot, 'proto', 'perfetto_subset.proto');

/** `BuiltinClock.BUILTIN_CLOCK_BOOTTIME` (protos/perfetto/common/builtin_clock.proto). */
export const BUILTIN_CLOCK_BOOTTIME = 6;

/**
 * The `trusted_packet_sequence_id` of every packet pidgen writes ("pidg" in
 * ASCII). traced numbers its sequences up from 1, so a baseline added to a
 * recorded trace never joins one of the recorder's sequences; pidgen's
 * packets use no per-sequence (incremental) state.
 */
export const PIDGEN_SEQUENCE_ID = 0x7069_6467;

// clone(2) flags of the synthesized task_newtask. trace_processor only tests
// CLONE_THREAD; the rest are the least a real clone of that kind carries
// (CLONE_THREAD needs CLONE_SIGHAND, which needs CLONE_VM; kernel_thread()
// adds CLONE_UNTRACED), so the event reads as plausible kernel output.
const SIGCHLD = 17;
const CLONE_VM = 0x100;
const CLONE_SIGHAND = 0x800;
const CLONE_THREAD = 0x1_0000;
const CLONE_UNTRACED = 0x80_0000;
const FORK_FLAGS = SIGCHLD;
const KTHREAD_FLAGS = CLONE_VM | CLONE_UNTRACED;
const THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;

export interface PerfettoOptions {
  /**
   * Maps a PID or TID as the scanning namespace sees it to the root-namespace
   * one (e.g. from the NSpid line of /proc/<pid>/status under the root /proc).
   * Give it only when the snapshot was taken in a child PID namespace: then
   * `pid`/`tid` are the root numbers and `nspid`/`nstid` hold the scanning
   * namespace's. Without it the snapshot's numbers are taken as root numbers
   * and `nspid`/`nstid` are left out. Returns undefined when unknown.
   *
   * `nspid` is upstream's NSpid without its root element. pidgen knows only
   * the scanning namespace's number, which is all of it when the scan ran one
   * level below the root (a container); for deeper nesting the intermediate
   * levels are missing.
   */
  rootPidOf?: (nsPid: number) => number | undefined;
  /**
   * Called with each scanning-namespace PID/TID that `rootPidOf` could not
   * map. Such a task is left out (with, for a process, its threads): writing
   * its namespace-local number as `pid` would name another root process.
   */
  onUnmappedPid?: (nsPid: number) => void;
  /**
   * The clocks a standalone trace's ClockSnapshot relates, read together
   * (nanoseconds). Default: read when the trace is written, which relates
   * them as well as at snapshot time unless the host suspended or its wall
   * clock was stepped in between.
   */
  clocks?: { boottimeNs: bigint; realtimeNs: bigint; monotonicNs: bigint };
}

/**
 * The snapshot as a serialized Perfetto `Trace` (protos/perfetto/trace/
 * trace.proto), ready to write to a `.pftrace` file.
 *
 * Throws a PidgenError (code `EBADSNAPSHOT`) for a time outside the unsigned
 * 64-bit range, and (code `ENOPROTO`) when proto/perfetto_subset.proto is
 * missing from the installed package.
 */
export function toPerfetto(snapshot: Snapshot, options: PerfettoOptions = {}): Uint8Array {
  const clocks = options.clocks ?? readClocks();
  const packets = [clockSnapshotPacket(clocks), ...buildPackets(snapshot, options, undefined)];
  return schema().trace.encode({ packet: packets }).finish();
}

/**
 * Adds the snapshot's packets to an existing serialized trace and returns the
 * combined trace; `existing` is not modified, and its packets come out
 * unchanged, in their order.
 *
 * A `Trace` is only a sequence of `packet` (field 1) records, so packets can
 * be put between two of a trace's without decoding the rest. The baseline
 * goes right after the recording's first ClockSnapshot (first when it has
 * none), and its events are fitted to the recording as the header of this
 * file explains: no second task_newtask for a hand-over the recording has,
 * the recording's CPU-0 first-bundle bookkeeping kept, nothing stamped where
 * trace_processor would drop it. No ClockSnapshot of pidgen's is added: the
 * recording's clock stays the trace's.
 *
 * Throws a PidgenError (code `EBADTRACE`) when `existing` is not a plain,
 * complete Perfetto trace: gzip-compressed, another format, or truncated.
 */
export function appendPerfetto(existing: Uint8Array, snapshot: Snapshot, options: PerfettoOptions = {}): Uint8Array {
  const recording = readRecording(existing);
  const baseline = schema().trace.encode({ packet: buildPackets(snapshot, options, recording) }).finish();
  const combined = new Uint8Array(baseline.length + existing.length);
  combined.set(existing.subarray(0, recording.insertAt), 0);
  combined.set(baseline, recording.insertAt);
  combined.set(existing.subarray(recording.insertAt), recording.insertAt + baseline.length);
  return combined;
}

/** BOOTTIME, REALTIME and MONOTONIC now; BOOTTIME is the midpoint of two MONOTONIC reads' bracket. */
function readClocks(): { boottimeNs: bigint; realtimeNs: bigint; monotonicNs: bigint } {
  // process.hrtime is CLOCK_MONOTONIC (libuv's uv_hrtime); Node has no
  // CLOCK_BOOTTIME, the addon reads it.
  const before = process.hrtime.bigint();
  const boottimeNs = nativeAddon().boottimeNs();
  const after = process.hrtime.bigint();
  const realtimeNs = BigInt(Date.now()) * 1_000_000n;
  return { boottimeNs, realtimeNs, monotonicNs: (before + after) / 2n };
}

function clockSnapshotPacket(clocks: { boottimeNs: bigint; realtimeNs: bigint; monotonicNs: bigint }): PacketMessage {
  return {
    timestamp: u64('clock snapshot boottime', clocks.boottimeNs),
    timestamp_clock_id: BUILTIN_CLOCK_BOOTTIME,
    trusted_packet_sequence_id: PIDGEN_SEQUENCE_ID,
    clock_snapshot: {
      clocks: [
        { clock_id: BUILTIN_CLOCK_BOOTTIME, timestamp: u64('clock snapshot boottime', clocks.boottimeNs) },
        { clock_id: BUILTIN_CLOCK_REALTIME, timestamp: u64('clock snapshot realtime', clocks.realtimeNs) },
        { clock_id: BUILTIN_CLOCK_MONOTONIC, timestamp: u64('clock snapshot monotonic', clocks.monotonicNs) },
      ],
      primary_trace_clock: BUILTIN_CLOCK_BOOTTIME,
    },
  };
}

// --- the schema ------------------------------------------------------------

interface PerfettoSchema {
  trace: protobuf.Type;
}

let cachedSchema: PerfettoSchema | undefined;

function schema(): PerfettoSchema {
  if (cachedSchema) return cachedSchema;
  let root: protobuf.Root;
  try {
    // keepCase: write the upstream snake_case field names, not camelCase.
    root = new protobuf.Root().loadSync(PERFETTO_PROTO_PATH, { keepCase: true });
  } catch (error) {
    throw new PidgenError(`load ${PERFETTO_PROTO_PATH}: ${(error as Error).message}`, {
      code: 'ENOPROTO',
      op: 'load proto',
      target: PERFETTO_PROTO_PATH,
      hint: 'the proto/ folder ships with pidgen; reinstall the package',
    }, { cause: error });
  }
  cachedSchema = { trace: root.lookupType('perfetto.protos.Trace') };
  return cachedSchema;
}

// --- building the packets --------------------------------------------------

/** A uint64 for protobufjs, exact above 2^53 (a JS number would round). */
interface U64 {
  low: number;
  high: number;
  unsigned: true;
}

interface ProcessMessage {
  pid: number;
  ppid?: number;
  cmdline: string[];
  cmdline_is_comm?: boolean;
  uid?: number;
  nspid?: number[];
  process_start_from_boot?: U64;
  is_kthread?: boolean;
}

interface ThreadMessage {
  tid: number;
  tgid: number;
  name: string;
  nstid?: number[];
}

interface TaskNewtaskMessage {
  pid: number;
  comm?: string;
  clone_flags: U64;
}

interface FtraceEventMessage {
  timestamp: U64;
  /** The task that raised the event (root namespace). */
  pid: number;
  task_newtask?: TaskNewtaskMessage;
  sched_process_free?: { pid: number; comm?: string };
}

interface BundleMessage {
  cpu: number;
  event: FtraceEventMessage[];
  ftrace_clock?: number;
  ftrace_timestamp?: U64 | number;
  boot_timestamp?: U64 | number;
  previous_bundle_end_timestamp?: U64;
  last_read_event_timestamp?: U64;
}

interface PacketMessage {
  timestamp: U64;
  timestamp_clock_id: number;
  trusted_packet_sequence_id: number;
  process_tree?: { processes: ProcessMessage[]; threads: ThreadMessage[]; collection_end_timestamp: U64 };
  ftrace_events?: BundleMessage;
  clock_snapshot?: { clocks: { clock_id: number; timestamp: U64 }[]; primary_trace_clock: number };
}

/** One ProcessTree packet's content, keyed by its timestamp. */
interface TreeAt {
  processes: ProcessMessage[];
  threads: ThreadMessage[];
}

/** A synthesized ftrace event, in BOOTTIME. */
interface EventAt {
  ts: bigint;
  pid: number;
  task_newtask?: TaskNewtaskMessage;
  sched_process_free?: { pid: number; comm?: string };
}

/** A hand-over to place: the new holder's number, and what is known of who made it. */
interface HandOver {
  atNs: bigint;
  /** Root-namespace number of the new task. */
  rootTid: number;
  comm?: string;
  /** Root-namespace TID of the task that created it, when known. */
  creator?: number;
  cloneFlags: number;
  what: string;
}

/**
 * Where each hand-over's events go and when its new holder is described:
 * the rules of the file header, standalone and appended.
 */
class HandOvers {
  readonly events: EventAt[] = [];

  constructor(
    private readonly recording: RecordingFacts | undefined,
    private readonly window: Snapshot['window'],
  ) {}

  /** Writes what splits the number at the hand-over; returns when the new holder may be described. */
  place(h: HandOver): bigint {
    const recording = this.recording;
    if (!recording) return this.free(h, maxBig(h.atNs - 1n, this.window.startNs));
    const validFrom = recording.ftraceValidFromNs;
    const kernel = recordedNewTask(recording, h.rootTid, h.atNs, this.window.endNs);
    if (kernel !== undefined) {
      // The recording's event starts the new process. If trace_processor
      // drops it (before the recording's valid data), end the old holder
      // where the data becomes valid instead.
      if (kernel < validFrom) this.free(h, validFrom);
      return maxBig(this.window.endNs, maxBig(kernel, validFrom) + 1n);
    }
    const at = maxBig(h.atNs, validFrom);
    if (h.creator === undefined) return this.free(h, maxBig(h.atNs - 1n, validFrom));
    this.events.push({
      ts: at,
      pid: h.creator,
      task_newtask: { pid: h.rootTid, ...(h.comm !== undefined ? { comm: h.comm } : {}), clone_flags: u64(`${h.what} clone_flags`, BigInt(h.cloneFlags)) },
    });
    return at + 1n;
  }

  /** A sched_process_free for the number at `ts`: the old holder ends there. */
  private free(h: HandOver, ts: bigint): bigint {
    this.events.push({ ts, pid: h.rootTid, sched_process_free: { pid: h.rootTid } });
    return ts + 1n;
  }
}

function buildPackets(snapshot: Snapshot, options: PerfettoOptions, recording: RecordingFacts | undefined): PacketMessage[] {
  const mapper = new PidMapper(options);
  const reuses = new ReuseIndex(snapshot);
  const windowStart = snapshot.window.startNs;
  const trees = new Map<bigint, TreeAt>();
  const handOvers = new HandOvers(recording, snapshot.window);
  const placed = new Set<string>();

  const treeAt = (ts: bigint): TreeAt => {
    let tree = trees.get(ts);
    if (!tree) trees.set(ts, (tree = { processes: [], threads: [] }));
    return tree;
  };

  for (const process of snapshot.processes) {
    const rootPid = mapper.map(process.pid);
    if (rootPid === undefined) continue;
    const processReuse = reuses.owning(process.pid, process.pid);
    const rootPpid = mapper.parent(process);
    let processTs = windowStart;
    if (processReuse !== undefined) {
      placed.add(ReuseIndex.key(process.pid, processReuse.atNs));
      // The log's creator is the task that forked it; the ppid read later
      // can be a reaper it was reparented to. ppid 0 is "no parent here"
      // (PID 1, kthreadd, a parent outside the namespace): never a creator.
      const creator = mapper.creator(processReuse) ?? (rootPpid || undefined);
      processTs = handOvers.place({
        atNs: processReuse.atNs,
        rootTid: rootPid,
        comm: process.comm,
        ...(creator !== undefined ? { creator } : {}),
        cloneFlags: process.kernelThread ? KTHREAD_FLAGS : FORK_FLAGS,
        what: `processes[pid=${process.pid}]`,
      });
    }
    treeAt(processTs).processes.push(processMessage(process, rootPid, rootPpid, mapper.namespaced));

    for (const thread of process.threads) {
      const rootTid = thread.tid === process.pid ? rootPid : mapper.map(thread.tid);
      if (rootTid === undefined) continue;
      // A thread belongs to the process entry it is listed under, so it can
      // be described no earlier than that entry.
      let threadTs = processTs;
      const threadReuse = thread.tid === process.pid ? undefined : reuses.owning(thread.tid, process.pid);
      if (threadReuse !== undefined) {
        placed.add(ReuseIndex.key(thread.tid, threadReuse.atNs));
        threadTs = maxBig(
          processTs,
          handOvers.place({
            atNs: threadReuse.atNs,
            rootTid,
            comm: thread.comm,
            creator: mapper.creator(threadReuse) ?? rootPid,
            cloneFlags: THREAD_FLAGS,
            what: `threads[tid=${thread.tid}]`,
          }),
        );
      }
      treeAt(threadTs).threads.push(threadMessage(thread, rootTid, rootPid, mapper.namespaced));
    }
  }

  // Hand-overs whose new task is not in the snapshot (it came and went, or
  // a later hand-over of the same number replaced it): still split the
  // number there, from the creator the log saw. Failing that, a thread that
  // exited in the window is in `exited` with its process, which made it.
  const exitedThreads = new Map<string, { pid: number; comm: string }>();
  for (const task of snapshot.exited) if (task.tid !== task.pid) exitedThreads.set(ReuseIndex.key(task.tid, task.startNs), task);
  for (const reuse of reuses.all()) {
    const key = ReuseIndex.key(reuse.pid, reuse.atNs);
    if (placed.has(key)) continue;
    const rootTid = mapper.map(reuse.pid);
    if (rootTid === undefined) continue;
    const thread = exitedThreads.get(key);
    const creator = mapper.creator(reuse) ?? (thread ? mapper.map(thread.pid) : undefined);
    handOvers.place({
      atNs: reuse.atNs,
      rootTid,
      ...(thread ? { comm: thread.comm } : {}),
      ...(creator !== undefined ? { creator } : {}),
      cloneFlags: thread ? THREAD_FLAGS : FORK_FLAGS,
      what: `reused[pid=${reuse.pid}]`,
    });
  }

  const collectionEnd = u64('window.endNs', snapshot.window.endNs);
  const packets: { ts: bigint; packet: PacketMessage }[] = [];
  for (const [ts, tree] of trees) {
    packets.push({ ts, packet: packet(ts, { process_tree: { processes: tree.processes, threads: tree.threads, collection_end_timestamp: collectionEnd } }) });
  }
  packets.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  const out = packets.map((p) => p.packet);
  if (handOvers.events.length > 0) out.unshift(eventBundle(handOvers.events, recording?.cpu0First));
  return out;
}

/**
 * Every synthesized event in one CPU-0 bundle. trace_processor sorts ftrace
 * events one by one by their own timestamps, so one bundle serves them all,
 * and it comes first so a reader meets it before the trees it splits. In
 * an appended trace it is CPU 0's first bundle in the file: it carries the
 * recording's first-bundle fields for CPU 0, and the recording's ftrace
 * clock, in which its timestamps are then written.
 */
function eventBundle(events: readonly EventAt[], cpu0First: FirstBundle | undefined): PacketMessage {
  const sorted = [...events].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  const offset = cpu0First?.clock.offsetNs ?? 0n;
  const bundle: BundleMessage = {
    cpu: 0,
    event: sorted.map((e) => ({
      timestamp: u64(`event at ${e.ts}`, e.ts + offset),
      pid: e.pid,
      ...(e.task_newtask ? { task_newtask: e.task_newtask } : {}),
      ...(e.sched_process_free ? { sched_process_free: e.sched_process_free } : {}),
    })),
  };
  if (cpu0First) {
    const { clock } = cpu0First;
    if (clock.ftraceClock !== 0) bundle.ftrace_clock = clock.ftraceClock;
    if (clock.ftraceTimestamp !== undefined) bundle.ftrace_timestamp = i64(clock.ftraceTimestamp);
    if (clock.bootTimestamp !== undefined) bundle.boot_timestamp = i64(clock.bootTimestamp);
    if (cpu0First.previousBundleEnd !== undefined) bundle.previous_bundle_end_timestamp = u64('previous_bundle_end_timestamp', cpu0First.previousBundleEnd);
    if (cpu0First.lastReadEvent !== undefined) bundle.last_read_event_timestamp = u64('last_read_event_timestamp', cpu0First.lastReadEvent);
  }
  // The packet's own timestamp is the bundle's first event: ftrace bundles
  // are tokenized by event, the packet time only orders the packet.
  return packet(sorted[0]!.ts, { ftrace_events: bundle });
}

function packet(ts: bigint, data: Pick<PacketMessage, 'process_tree' | 'ftrace_events'>): PacketMessage {
  return {
    timestamp: u64('packet timestamp', ts),
    timestamp_clock_id: BUILTIN_CLOCK_BOOTTIME,
    trusted_packet_sequence_id: PIDGEN_SEQUENCE_ID,
    ...data,
  };
}

function processMessage(process: ProcessEntry, rootPid: number, rootPpid: number | undefined, namespaced: boolean): ProcessMessage {
  const statRead = !process.unreadable?.includes('stat');
  // traced_probes writes the comm when /proc/<pid>/cmdline is empty, which is
  // the case for kernel threads and zombies; trace_processor skips a process
  // with no cmdline element at all (SystemProbesParser::ParseProcessTree).
  const fromComm = process.cmdline.length === 0;
  const message: ProcessMessage = {
    pid: rootPid,
    cmdline: fromComm ? [process.comm] : [...process.cmdline],
  };
  if (rootPpid !== undefined) message.ppid = rootPpid;
  if (fromComm) message.cmdline_is_comm = true;
  // uid is int32 upstream; a uid above 2^31 - 1 wraps as traced_probes'
  // static_cast does, and trace_processor casts it back to uint32.
  if (process.uid !== null) message.uid = process.uid | 0;
  if (namespaced) message.nspid = [process.pid];
  if (statRead) {
    message.process_start_from_boot = u64(`processes[pid=${process.pid}].startNs`, process.startNs);
    message.is_kthread = process.kernelThread;
  }
  return message;
}

function threadMessage(thread: ThreadEntry, rootTid: number, rootTgid: number, namespaced: boolean): ThreadMessage {
  const message: ThreadMessage = { tid: rootTid, tgid: rootTgid, name: thread.comm };
  if (namespaced) message.nstid = [thread.tid];
  return message;
}

/** Scanning-namespace numbers to root-namespace numbers, each looked up once. */
class PidMapper {
  readonly namespaced: boolean;
  private readonly known = new Map<number, number | undefined>();

  constructor(private readonly options: PerfettoOptions) {
    this.namespaced = options.rootPidOf !== undefined;
  }

  /** The root number, or undefined (reported once) when it cannot be known. */
  map(nsPid: number): number | undefined {
    if (!this.options.rootPidOf) return nsPid;
    if (this.known.has(nsPid)) return this.known.get(nsPid);
    const root = this.options.rootPidOf(nsPid);
    this.known.set(nsPid, root);
    if (root === undefined) this.options.onUnmappedPid?.(nsPid);
    return root;
  }

  /** The root number of the parent, or undefined when unknown. */
  parent(process: ProcessEntry): number | undefined {
    if (process.unreadable?.includes('stat')) return undefined;
    if (!this.options.rootPidOf) return process.ppid;
    // In a child namespace, ppid 0 means the parent is outside it. A parent
    // that cannot be mapped only loses the ppid field, so it is not reported.
    if (process.ppid === 0) return undefined;
    if (this.known.has(process.ppid)) return this.known.get(process.ppid);
    return this.options.rootPidOf(process.ppid);
  }

  /**
   * The root TID of the task the log saw create a hand-over's new task, or
   * undefined when the log has none (or it cannot be mapped: the event then
   * falls back, so it is not reported).
   */
  creator(reuse: ReusedPid): number | undefined {
    const tid = reuse.creator?.tid;
    if (!tid) return undefined;
    if (!this.options.rootPidOf) return tid;
    if (this.known.has(tid)) return this.known.get(tid);
    return this.options.rootPidOf(tid);
  }
}

/** The snapshot's `reused` list, by number and by the entry that holds it after. */
class ReuseIndex {
  private readonly byHolder = new Map<string, ReusedPid>();
  private readonly unique: ReusedPid[] = [];

  constructor(snapshot: Snapshot) {
    const seen = new Set<string>();
    for (const reuse of snapshot.reused) {
      const key = ReuseIndex.key(reuse.pid, reuse.atNs);
      if (seen.has(key)) continue;
      seen.add(key);
      this.unique.push(reuse);
      if (reuse.holder !== undefined) this.byHolder.set(`${reuse.pid}/${reuse.holder}`, reuse);
    }
  }

  static key(pid: number, atNs: bigint): string {
    return `${pid}@${atNs}`;
  }

  all(): readonly ReusedPid[] {
    return this.unique;
  }

  /**
   * The hand-over that made process `holder` (or one of its threads) the
   * holder of number `nr`, as the algorithm recorded it; undefined when the
   * entry held the number for the whole window.
   */
  owning(nr: number, holder: number): ReusedPid | undefined {
    return this.byHolder.get(`${nr}/${holder}`);
  }
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function u64(path: string, value: bigint): U64 {
  // As in output/json.ts: a negative or oversized time is a bug upstream.
  if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
    throw new PidgenError(`write perfetto trace: ${path} is ${value}, outside the unsigned 64-bit range`, {
      code: 'EBADSNAPSHOT',
      op: 'write perfetto trace',
      target: path,
    });
  }
  return { low: Number(value & 0xffff_ffffn) | 0, high: Number(value >> 32n) | 0, unsigned: true };
}

/** An int64 for protobufjs (two's complement halves). */
function i64(value: bigint): U64 | number {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffff_ffffn) | 0, high: Number(bits >> 32n) | 0, unsigned: true };
}
