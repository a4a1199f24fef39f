/**
 * The Perfetto output: a snapshot as a Perfetto `Trace`, for the
 * Perfetto UI and trace_processor, standalone or added to a recorded trace.
 *
 * Written with protobufjs from proto/perfetto_subset.proto, which mirrors
 * upstream field numbers exactly (see its header). Every packet carries a
 * CLOCK_BOOTTIME timestamp (`timestamp_clock_id` = BUILTIN_CLOCK_BOOTTIME),
 * the clock the snapshot was taken in and traced's default trace clock.
 *
 * What the trace holds, in timestamp order:
 *
 *   window.startNs      ProcessTree: every process and thread of the snapshot
 *                       that held its number for the whole window.
 *   atNs (each reuse)   FtraceEventBundle with one synthesized `task_newtask`
 *                       for the number a new task took at atNs.
 *   atNs + 1            ProcessTree: the new task's process entry and threads.
 *
 * ProcessTree fields follow traced_probes (src/traced/probes/ps/
 * process_stats_data_source.cc): `pid` is the root-namespace PID and `nspid`
 * the PID seen from the scanning namespace; an empty argv (kernel
 * threads, zombies) is written as the comm with `cmdline_is_comm`. Fields the
 * walker could not read (`unreadable`) are left out, never guessed.
 *
 * ## Why PID reuse is written as a `task_newtask` event
 *
 * trace_processor resolves the PID or TID named by every event to a process
 * (upid) and thread (utid) at parse time, in timestamp order, through
 * ProcessTracker (src/trace_processor/importers/common/process_tracker.cc):
 *
 * - A ProcessTree packet does not start a new process for a PID it already
 *   knows. SystemProbesParser::ParseProcessTree
 *   (importers/proto/system_probes_parser.cc) calls
 *   ProcessTracker::GetOrCreateProcess(pid), which returns the upid already
 *   in `pids_`, and then UpdateProcessWithParent(), which starts a new process
 *   only when the known parent upid differs from the new one (older versions,
 *   through SetProcessMetadata(pid, ppid, ...), never do). Two ProcessTree
 *   packets for a reused PID whose old and new task have the same parent, or
 *   whose old task's parent was never seen, are merged into one process. So a
 *   second ProcessTree alone is not enough.
 * - A `task_newtask` ftrace event is. FtraceParser::ParseTaskNewTask
 *   (importers/ftrace/ftrace_parser.cc) calls ProcessTracker::StartNewProcess
 *   (no CLONE_THREAD in clone_flags), which erases the PID from `pids_` (and,
 *   in current versions, `tids_`) and creates a fresh upid and main-thread
 *   utid starting at the event's timestamp; with CLONE_THREAD it calls StartNewThread plus
 *   AssociateThreads, a fresh utid bound to the creating thread's process.
 *   Events before atNs have already been resolved to the old upid/utid;
 *   GetThreadOrNull() walks `tids_` newest first, so events from atNs on
 *   resolve to the new ones. That is the split the issue asks for.
 * - The new task's ProcessTree goes 1 ns after the event, never at the same
 *   instant: if trace_processor parsed it first it would write the new task's
 *   cmdline, uid and start onto the old process. At atNs + 1 it lands on the
 *   upid StartNewProcess just made (same parent, so UpdateProcessWithParent
 *   keeps it).
 * - `sched_process_free` for the old task is deliberately not written: it
 *   fires after the PID is freed, so it can follow the new task's creation
 *   (release_task() frees the PID first), and ProcessTracker::EndThread would then end the new task.
 *
 * Limits, from the same code:
 * - FtraceParser::MaybeOnFirstFtraceEvent drops ftrace events before the
 *   recorded trace's tracing_started and skips (soft-drops) them before the
 *   point where all of its per-cpu buffers are valid. A reuse inside that
 *   span is not split; it only matters if the span holds events of the old
 *   task from another data source.
 * - If the recorded trace itself has the real `task_newtask` (shortly after
 *   atNs, at the end of copy_process()), trace_processor starts a second new
 *   process there; events still split correctly at the reuse, but the
 *   cmdline and uid stay on the short-lived first one.
 * - A number reused in the window whose new task is not in the snapshot is
 *   written as a fork from an unknown parent (pid 0), with no comm.
 */

import { join } from 'node:path';
import protobuf from 'protobufjs';
import { PidgenError } from '../errors.js';
import { packageRoot } from '../package.js';
import type { ProcessEntry, Snapshot, ThreadEntry } from '../model/snapshot.js';

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
  const packets = buildPackets(snapshot, options);
  return schema().trace.encode({ packet: packets }).finish();
}

/**
 * Adds the snapshot's packets to an existing serialized trace and returns the
 * combined trace; `existing` is not modified.
 *
 * A `Trace` is only a sequence of `packet` (field 1) records, so two traces
 * concatenated are one trace with the packets of both; no decoding is needed.
 * The snapshot's packets are put *first*: trace_processor's sorter
 * (src/trace_processor/sorter/trace_sorter.h) extracts events incrementally
 * at the recorder's flush/read-buffer service events (write_into_file
 * traces), then counts as `sorter_push_event_out_of_order`, and in current
 * versions discards, any later-read event older than what it already pushed. A baseline read last, stamped before the recorded events,
 * would be dropped; read first, it is sorted in with them. Order in the file
 * carries no other meaning.
 *
 * Throws a PidgenError (code `EBADTRACE`) when `existing` is not a plain,
 * complete Perfetto trace: gzip-compressed, another format, or truncated.
 */
export function appendPerfetto(existing: Uint8Array, snapshot: Snapshot, options: PerfettoOptions = {}): Uint8Array {
  checkTraceFraming(existing);
  const baseline = toPerfetto(snapshot, options);
  const combined = new Uint8Array(baseline.length + existing.length);
  combined.set(baseline, 0);
  combined.set(existing, baseline.length);
  return combined;
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

interface PacketMessage {
  timestamp: U64;
  timestamp_clock_id: number;
  trusted_packet_sequence_id: number;
  process_tree?: { processes: ProcessMessage[]; threads: ThreadMessage[]; collection_end_timestamp: U64 };
  ftrace_events?: { cpu: number; event: { timestamp: U64; pid: number; task_newtask: TaskNewtaskMessage }[] };
}

/** One ProcessTree packet's content, keyed by its timestamp. */
interface TreeAt {
  processes: ProcessMessage[];
  threads: ThreadMessage[];
}

/** One synthesized task creation. */
interface NewTask {
  atNs: bigint;
  /** Root-namespace TID of the creating task; 0 when unknown. */
  sourceTid: number;
  newTask: TaskNewtaskMessage;
}

function buildPackets(snapshot: Snapshot, options: PerfettoOptions): PacketMessage[] {
  const mapper = new PidMapper(options);
  const reuses = new ReuseIndex(snapshot);
  const windowStart = snapshot.window.startNs;
  const trees = new Map<bigint, TreeAt>();
  const newTasks: NewTask[] = [];
  const claimed = new Set<string>();

  const treeAt = (ts: bigint): TreeAt => {
    let tree = trees.get(ts);
    if (!tree) trees.set(ts, (tree = { processes: [], threads: [] }));
    return tree;
  };

  for (const process of snapshot.processes) {
    const rootPid = mapper.map(process.pid);
    if (rootPid === undefined) continue;
    const processReuse = reuses.owning(process.pid, process.pid);
    const processTs = processReuse === undefined ? windowStart : processReuse + 1n;
    const rootPpid = mapper.parent(process);
    treeAt(processTs).processes.push(processMessage(process, rootPid, rootPpid, mapper.namespaced));

    if (processReuse !== undefined) {
      claimed.add(ReuseIndex.key(process.pid, processReuse));
      newTasks.push({
        atNs: processReuse,
        sourceTid: rootPpid ?? 0,
        newTask: {
          pid: rootPid,
          comm: process.comm,
          clone_flags: u64(`processes[pid=${process.pid}] clone_flags`, BigInt(process.kernelThread ? KTHREAD_FLAGS : FORK_FLAGS)),
        },
      });
    }

    for (const thread of process.threads) {
      const rootTid = thread.tid === process.pid ? rootPid : mapper.map(thread.tid);
      if (rootTid === undefined) continue;
      // A thread belongs to the process entry it is listed under, so it can
      // be described no earlier than that entry.
      const threadReuse = thread.tid === process.pid ? processReuse : reuses.owning(thread.tid, process.pid);
      const threadTs = threadReuse === undefined ? processTs : maxBig(processTs, threadReuse + 1n);
      treeAt(threadTs).threads.push(threadMessage(thread, rootTid, rootPid, mapper.namespaced));

      if (threadReuse !== undefined && thread.tid !== process.pid) {
        claimed.add(ReuseIndex.key(thread.tid, threadReuse));
        newTasks.push({
          atNs: threadReuse,
          sourceTid: rootPid,
          newTask: { pid: rootTid, comm: thread.comm, clone_flags: u64(`threads[tid=${thread.tid}] clone_flags`, BigInt(THREAD_FLAGS)) },
        });
      }
    }
  }

  // Reuses whose new task is not in the snapshot (it died, or the entry is
  // the old holder read before the reuse): still split the number there.
  for (const reuse of reuses.all()) {
    if (claimed.has(ReuseIndex.key(reuse.pid, reuse.atNs))) continue;
    const rootPid = mapper.map(reuse.pid);
    if (rootPid === undefined) continue;
    newTasks.push({ atNs: reuse.atNs, sourceTid: 0, newTask: { pid: rootPid, clone_flags: u64('reused clone_flags', BigInt(FORK_FLAGS)) } });
  }

  const collectionEnd = u64('window.endNs', snapshot.window.endNs);
  const timed: { ts: bigint; order: number; packet: PacketMessage }[] = [];
  for (const [ts, tree] of trees) {
    timed.push({
      ts,
      order: 1,
      packet: packet(ts, { process_tree: { processes: tree.processes, threads: tree.threads, collection_end_timestamp: collectionEnd } }),
    });
  }
  for (const task of newTasks) {
    const at = u64(`reused[pid=${task.newTask.pid}].atNs`, task.atNs);
    timed.push({
      ts: task.atNs,
      order: 0,
      packet: packet(task.atNs, {
        // FtraceTokenizer::TokenizeFtraceBundle drops a bundle without a cpu;
        // the event's own timestamp is BOOTTIME when no ftrace_clock is set.
        ftrace_events: { cpu: 0, event: [{ timestamp: at, pid: task.sourceTid, task_newtask: task.newTask }] },
      }),
    });
  }
  // Timestamp order, creations before descriptions at the same instant; the
  // sort is stable, so snapshot order is kept otherwise.
  timed.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.order - b.order));
  return timed.map((t) => t.packet);
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
}

/** The snapshot's `reused` list, by number and by the entry that holds it after. */
class ReuseIndex {
  private readonly byHolder = new Map<string, bigint>();
  private readonly unique: { pid: number; atNs: bigint }[] = [];

  constructor(snapshot: Snapshot) {
    const seen = new Set<string>();
    for (const reuse of snapshot.reused) {
      const key = ReuseIndex.key(reuse.pid, reuse.atNs);
      if (seen.has(key)) continue;
      seen.add(key);
      this.unique.push({ pid: reuse.pid, atNs: reuse.atNs });
      if (reuse.holder !== undefined) this.byHolder.set(`${reuse.pid}/${reuse.holder}`, reuse.atNs);
    }
  }

  static key(pid: number, atNs: bigint): string {
    return `${pid}@${atNs}`;
  }

  all(): readonly { pid: number; atNs: bigint }[] {
    return this.unique;
  }

  /**
   * The hand-over that made process `holder` (or one of its threads) the
   * holder of number `nr`, as the algorithm recorded it; undefined when the
   * entry held the number for the whole window.
   */
  owning(nr: number, holder: number): bigint | undefined {
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

// --- checking an existing trace --------------------------------------------

const TRACE_PACKET_TAG = 0x0a; // field 1 (Trace.packet), wire type 2 (length-delimited)

/**
 * Walks the top-level records of a serialized Trace without decoding them:
 * each must be a `packet` field whose length fits in what is left.
 */
function checkTraceFraming(bytes: Uint8Array): void {
  const fail = (why: string, hint?: string): never => {
    throw new PidgenError(`append to perfetto trace: ${why}`, {
      code: 'EBADTRACE',
      op: 'append to perfetto trace',
      ...(hint ? { hint } : {}),
    });
  };
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    fail('the existing trace is gzip-compressed', 'decompress it first (gunzip), then append');
  }
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes[offset] !== TRACE_PACKET_TAG) {
      fail(`byte ${offset} is not a Trace.packet field (tag 0x${(bytes[offset] ?? 0).toString(16).padStart(2, '0')}); not a Perfetto protobuf trace`);
    }
    const [length, next] = readVarint(bytes, offset + 1, fail);
    if (length > bytes.length - next) {
      fail(`the packet at byte ${offset} claims ${length} bytes but only ${bytes.length - next} remain; the trace is truncated`);
    }
    offset = next + length;
  }
}

function readVarint(bytes: Uint8Array, start: number, fail: (why: string) => never): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = start; i < bytes.length && i < start + 10; i++) {
    const byte = bytes[i] ?? 0;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      if (!Number.isSafeInteger(value)) fail(`the packet length at byte ${start} is too large`);
      return [value, i + 1];
    }
    scale *= 128;
  }
  return fail(`the packet length at byte ${start} is cut off; the trace is truncated`);
}
