/**
 * The `pidgen.snapshot/2` JSON format (the README's "Snapshot format";
 * schema/snapshot-2.json is the contract trace tools validate against).
 * `fromJSON` also reads version 1 (schema/snapshot-1.json).
 *
 * In memory, nanosecond times and 64-bit counters are bigint. In JSON they are
 * decimal strings: JSON numbers are doubles in most readers, and a boottime
 * in nanoseconds or a pidfs inode can exceed 2^53.
 *
 * Keys are written in the order the schema lists them, so two snapshots diff
 * line by line; optional fields are left out, never written as null.
 */

import { PidgenError } from '../errors.js';
import { TICK_NS } from '../model/layout.js';
import {
  SNAPSHOT_SCHEMA,
  SNAPSHOT_SCHEMA_V1,
  type ExitedTask,
  type GuardKind,
  type ProcessEntry,
  type ReusedPid,
  type Snapshot,
  type SnapshotSource,
  type ThreadEntry,
  type UnreadableField,
} from '../model/snapshot.js';

/** A decimal string holding an unsigned 64-bit integer, e.g. `"18446744073709551615"`. */
export type U64String = string;

/**
 * The JSON shape of an in-memory type: every bigint becomes a decimal
 * string, everything else stays. Deriving it keeps the two from drifting.
 */
export type Jsonify<T> = T extends bigint
  ? U64String
  : T extends readonly (infer U)[]
    ? Jsonify<U>[]
    : T extends object
      ? { [K in keyof T]: Jsonify<T[K]> }
      : T;

export type ThreadJson = Jsonify<ThreadEntry>;
export type ProcessJson = Jsonify<ProcessEntry>;
export type ReusedPidJson = Jsonify<ReusedPid>;
export type ExitedTaskJson = Jsonify<ExitedTask>;

/** The JSON shape of a {@link Snapshot}: what `toJSON` writes and schema/snapshot-2.json describes. */
export type SnapshotJson = Jsonify<Snapshot>;

/** Line 1 of `toJSONL` output: the snapshot without `processes`, plus their count. */
export type SnapshotJsonlHeader = Omit<SnapshotJson, 'processes'> & { processCount: number };

export interface ToJSONOptions {
  /** Indent with two spaces (for people); default is one compact line (for programs). */
  pretty?: boolean;
}

/** Converts a snapshot to a plain object that `JSON.stringify` writes as `pidgen.snapshot/2`. */
export function toJSONObject(snapshot: Snapshot): SnapshotJson {
  const { guard, stats } = snapshot;
  return {
    schema: snapshot.schema,
    host: { hostname: snapshot.host.hostname, kernel: snapshot.host.kernel, bootId: snapshot.host.bootId },
    pidNamespace: { inum: snapshot.pidNamespace.inum },
    clock: snapshot.clock,
    window: { startNs: u64('window.startNs', snapshot.window.startNs), endNs: u64('window.endNs', snapshot.window.endNs) },
    source: snapshot.source,
    guard: {
      kind: guard.kind,
      ...(guard.attach !== undefined ? { attach: guard.attach } : {}),
      ...(guard.generationBefore !== undefined ? { generationBefore: u64('guard.generationBefore', guard.generationBefore) } : {}),
      ...(guard.generationAfter !== undefined ? { generationAfter: u64('guard.generationAfter', guard.generationAfter) } : {}),
      ...(guard.pinned ? { pinned: true as const } : {}),
    },
    coherent: snapshot.coherent,
    ...(snapshot.reason !== undefined ? { reason: snapshot.reason } : {}),
    attempts: snapshot.attempts,
    reused: snapshot.reused.map(reusedToJson),
    exited: snapshot.exited.map(exitedToJson),
    processes: snapshot.processes.map(processToJson),
    stats: statsToJson(stats),
  };
}

/** The snapshot as one `pidgen.snapshot/2` JSON document, ending in a newline. */
export function toJSON(snapshot: Snapshot, options: ToJSONOptions = {}): string {
  return JSON.stringify(toJSONObject(snapshot), null, options.pretty ? 2 : undefined) + '\n';
}

/**
 * The snapshot as JSON Lines, so a reader can stream a large process list
 * instead of parsing one huge document:
 *
 *   line 1:      the snapshot object without `processes`, with `"processCount": N`
 *                in their place (schema, host, ..., reused, processCount, stats);
 *   lines 2..N+1: one process object per line (`#/$defs/process` in
 *                schema/snapshot-2.json), in snapshot order.
 *
 * Every line, the last included, ends in "\n". JSON.stringify escapes control
 * characters, so a newline inside a comm or argv never splits a line; U+0085,
 * U+2028 and U+2029 are escaped too, because some line readers (Python's
 * str.splitlines, for one) break lines there.
 */
export function toJSONL(snapshot: Snapshot): string {
  const { processes, stats, ...rest } = toJSONObject(snapshot);
  const header: SnapshotJsonlHeader = { ...rest, processCount: processes.length, stats };
  const lines = [jsonLine(header), ...processes.map(jsonLine)];
  return lines.join('\n') + '\n';
}

function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(/[\u0085\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Parses a `pidgen.snapshot/2` (or `/1`) JSON document back into a
 * {@link Snapshot} (decimal strings become bigint). A version 1 document
 * has no `exited` (read as empty) and no hand-over holders: those are
 * inferred once here from start times, as version 1 readers had to. Throws a PidgenError (code `ESCHEMA`) when
 * the document is another format or version, and (code `EBADSNAPSHOT`) naming
 * the JSON path of the first field that is missing or of the wrong type.
 * Unknown extra fields are ignored.
 */
export function fromJSON(text: string): Snapshot {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new PidgenError(`parse snapshot: not JSON (${(error as Error).message})`, { code: 'EBADSNAPSHOT', op: 'parse snapshot' }, { cause: error });
  }
  const root = new Reader(parsed, '$');
  const doc = root.object();
  const schema = doc.field('schema').value;
  if (schema !== SNAPSHOT_SCHEMA && schema !== SNAPSHOT_SCHEMA_V1) {
    throw new PidgenError(
      `parse snapshot: expected "schema": "${SNAPSHOT_SCHEMA}", got ${schema === undefined ? 'no schema field' : JSON.stringify(schema)}`,
      { code: 'ESCHEMA', op: 'parse snapshot', hint: `this pidgen reads ${SNAPSHOT_SCHEMA} and ${SNAPSHOT_SCHEMA_V1}` },
    );
  }
  const v1 = schema === SNAPSHOT_SCHEMA_V1;

  const host = doc.field('host').object();
  const window = doc.field('window').object();
  const guardJson = doc.field('guard').object();
  const statsJson = doc.field('stats').object();
  const clock = doc.field('clock').string();
  if (clock !== 'boottime') doc.field('clock').fail('"boottime"');

  const guard: Snapshot['guard'] = { kind: guardJson.field('kind').oneOf(GUARD_KINDS) };
  const attach = guardJson.optional('attach')?.string();
  if (attach !== undefined) guard.attach = attach;
  const generationBefore = guardJson.optional('generationBefore')?.u64();
  if (generationBefore !== undefined) guard.generationBefore = generationBefore;
  const generationAfter = guardJson.optional('generationAfter')?.u64();
  if (generationAfter !== undefined) guard.generationAfter = generationAfter;
  if (guardJson.optional('pinned')?.boolean() === true) guard.pinned = true;

  const stats: Snapshot['stats'] = {
    tasks: statsJson.field('tasks').int(),
    durationNs: statsJson.field('durationNs').u64(),
  };
  const repaired = statsJson.optional('repaired')?.int();
  if (repaired !== undefined) stats.repaired = repaired;
  const fullScans = statsJson.optional('fullScans')?.int();
  if (fullScans !== undefined) stats.fullScans = fullScans;
  const cmdlineFrom = statsJson.optional('cmdlineFrom')?.oneOf(['bpf', 'procfs'] as const);
  if (cmdlineFrom !== undefined) stats.cmdlineFrom = cmdlineFrom;

  const snapshot: Snapshot = {
    schema: SNAPSHOT_SCHEMA,
    host: {
      hostname: host.field('hostname').string(),
      kernel: host.field('kernel').string(),
      bootId: host.field('bootId').string(),
    },
    pidNamespace: { inum: doc.field('pidNamespace').object().field('inum').int() },
    clock: 'boottime',
    window: { startNs: window.field('startNs').u64(), endNs: window.field('endNs').u64() },
    source: doc.field('source').oneOf(SOURCES),
    guard,
    coherent: doc.field('coherent').boolean(),
    attempts: doc.field('attempts').int(),
    reused: doc.field('reused').array().map(readReused),
    exited: v1 ? [] : doc.field('exited').array().map(readExited),
    processes: doc.field('processes').array().map(readProcess),
    stats,
  };
  const reason = doc.optional('reason')?.string();
  if (reason !== undefined) snapshot.reason = reason;
  if (v1) inferHolders(snapshot);
  return snapshot;
}

// --- writing ---------------------------------------------------------------

/** `path` names the field in an error; a function, so the thousands of fields that are fine build no string. */
function u64(path: string | (() => string), value: bigint): U64String {
  // The schema promises unsigned decimal strings; a negative value here is a
  // bug upstream (e.g. end - start with swapped clocks), not data to publish.
  if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
    const where = typeof path === 'string' ? path : path();
    throw new PidgenError(`write snapshot: ${where} is ${value}, outside the unsigned 64-bit range`, {
      code: 'EBADSNAPSHOT',
      op: 'write snapshot',
      target: where,
    });
  }
  return value.toString();
}

function reusedToJson(entry: ReusedPid, index: number): ReusedPidJson {
  return {
    pid: entry.pid,
    atNs: u64(`reused[${index}].atNs`, entry.atNs),
    ...(entry.holder !== undefined ? { holder: entry.holder } : {}),
    ...(entry.creator !== undefined ? { creator: { pid: entry.creator.pid, tid: entry.creator.tid } } : {}),
  };
}

function exitedToJson(task: ExitedTask, index: number): ExitedTaskJson {
  return {
    pid: task.pid,
    tid: task.tid,
    comm: task.comm,
    startNs: u64(`exited[${index}].startNs`, task.startNs),
    exitNs: u64(`exited[${index}].exitNs`, task.exitNs),
  };
}

function processToJson(entry: ProcessEntry, index: number): ProcessJson {
  const at = () => `processes[${index}]`;
  return {
    pid: entry.pid,
    ppid: entry.ppid,
    uid: entry.uid,
    comm: entry.comm,
    cmdline: [...entry.cmdline],
    state: entry.state,
    startNs: u64(() => `${at()}.startNs`, entry.startNs),
    startExact: entry.startExact,
    ...(entry.pidfdIno !== undefined ? { pidfdIno: u64(() => `${at()}.pidfdIno`, entry.pidfdIno) } : {}),
    kernelThread: entry.kernelThread,
    threads: entry.threads.map((thread, t) => threadToJson(thread, () => `${at()}.threads[${t}]`)),
    ...(entry.unreadable !== undefined ? { unreadable: [...entry.unreadable] } : {}),
    ...(entry.lossy !== undefined ? { lossy: [...entry.lossy] } : {}),
  };
}

function threadToJson(thread: ThreadEntry, at: () => string): ThreadJson {
  return { tid: thread.tid, comm: thread.comm, state: thread.state, startNs: u64(() => `${at()}.startNs`, thread.startNs) };
}

function statsToJson(stats: Snapshot['stats']): SnapshotJson['stats'] {
  return {
    tasks: stats.tasks,
    durationNs: u64('stats.durationNs', stats.durationNs),
    ...(stats.repaired !== undefined ? { repaired: stats.repaired } : {}),
    ...(stats.fullScans !== undefined ? { fullScans: stats.fullScans } : {}),
    ...(stats.cmdlineFrom !== undefined ? { cmdlineFrom: stats.cmdlineFrom } : {}),
  };
}

// --- reading ---------------------------------------------------------------

const GUARD_KINDS = ['bpf', 'cursor', 'none'] as const satisfies readonly GuardKind[];
const SOURCES = ['procfs', 'bpf-iter'] as const satisfies readonly SnapshotSource[];
const UNREADABLE_FIELDS = ['stat', 'status', 'cmdline', 'threads', 'uid', 'pidfdIno'] as const satisfies readonly UnreadableField[];
const LOSSY_FIELDS = ['comm', 'cmdline'] as const;

function readReused(item: Reader): ReusedPid {
  const entry = item.object();
  const reused: ReusedPid = { pid: entry.field('pid').int(), atNs: entry.field('atNs').u64() };
  const holder = entry.optional('holder')?.int();
  if (holder !== undefined) reused.holder = holder;
  const creator = entry.optional('creator')?.object();
  if (creator) reused.creator = { pid: creator.field('pid').int(), tid: creator.field('tid').int() };
  return reused;
}

function readExited(item: Reader): ExitedTask {
  const entry = item.object();
  return {
    pid: entry.field('pid').int(),
    tid: entry.field('tid').int(),
    comm: entry.field('comm').string(),
    startNs: entry.field('startNs').u64(),
    exitNs: entry.field('exitNs').u64(),
  };
}

/**
 * Version 1 listed one hand-over per number and not who took it. The
 * entry claiming the number is its holder when it started at or after the
 * hand-over (a /proc start is floored to a tick, so up to a tick later).
 */
function inferHolders(snapshot: Snapshot): void {
  const claims = new Map<number, { pid: number; startNs: bigint; exact: boolean }>();
  for (const p of snapshot.processes) {
    for (const t of p.threads) claims.set(t.tid, { pid: p.pid, startNs: t.startNs, exact: false });
    claims.set(p.pid, { pid: p.pid, startNs: p.startNs, exact: p.startExact });
  }
  for (const reuse of snapshot.reused) {
    const claim = claims.get(reuse.pid);
    if (!claim) continue;
    const latestPossibleStart = claim.exact ? claim.startNs : claim.startNs + TICK_NS - 1n;
    if (reuse.atNs <= latestPossibleStart) reuse.holder = claim.pid;
  }
}

function readProcess(item: Reader): ProcessEntry {
  const entry = item.object();
  const uidField = entry.field('uid');
  const process: ProcessEntry = {
    pid: entry.field('pid').int(),
    ppid: entry.field('ppid').int(),
    uid: uidField.value === null ? null : uidField.int(),
    comm: entry.field('comm').string(),
    cmdline: entry.field('cmdline').array().map((arg) => arg.string()),
    state: entry.field('state').string(),
    startNs: entry.field('startNs').u64(),
    startExact: entry.field('startExact').boolean(),
    kernelThread: entry.field('kernelThread').boolean(),
    threads: entry.field('threads').array().map(readThread),
  };
  const pidfdIno = entry.optional('pidfdIno')?.u64();
  if (pidfdIno !== undefined) process.pidfdIno = pidfdIno;
  const unreadable = entry.optional('unreadable')?.array().map((field) => field.oneOf(UNREADABLE_FIELDS));
  if (unreadable !== undefined) process.unreadable = unreadable;
  const lossy = entry.optional('lossy')?.array().map((field) => field.oneOf(LOSSY_FIELDS));
  if (lossy !== undefined) process.lossy = lossy;
  return process;
}

function readThread(item: Reader): ThreadEntry {
  const thread = item.object();
  return {
    tid: thread.field('tid').int(),
    comm: thread.field('comm').string(),
    state: thread.field('state').string(),
    startNs: thread.field('startNs').u64(),
  };
}

/** A value inside the parsed document, with its JSON path for error messages. */
class Reader {
  constructor(
    readonly value: unknown,
    readonly path: string,
  ) {}

  fail(expected: string): never {
    const got = this.value === undefined ? 'nothing (field missing)' : JSON.stringify(this.value);
    throw new PidgenError(`parse snapshot: ${this.path} should be ${expected}, got ${truncate(got)}`, {
      code: 'EBADSNAPSHOT',
      op: 'parse snapshot',
      target: this.path,
    });
  }

  object(): ObjectReader {
    if (typeof this.value !== 'object' || this.value === null || Array.isArray(this.value)) this.fail('an object');
    return new ObjectReader(this.value as Record<string, unknown>, this.path);
  }

  array(): Reader[] {
    if (!Array.isArray(this.value)) this.fail('an array');
    return (this.value as unknown[]).map((item, i) => new Reader(item, `${this.path}[${i}]`));
  }

  string(): string {
    if (typeof this.value !== 'string') this.fail('a string');
    return this.value as string;
  }

  boolean(): boolean {
    if (typeof this.value !== 'boolean') this.fail('true or false');
    return this.value as boolean;
  }

  int(): number {
    if (typeof this.value !== 'number' || !Number.isSafeInteger(this.value) || this.value < 0) this.fail('a non-negative integer');
    return this.value as number;
  }

  u64(): bigint {
    if (typeof this.value !== 'string' || !/^[0-9]{1,20}$/.test(this.value)) this.fail('a decimal string');
    const value = BigInt(this.value as string);
    if (value > 0xffff_ffff_ffff_ffffn) this.fail('an unsigned 64-bit decimal string');
    return value;
  }

  oneOf<const T extends string>(allowed: readonly T[]): T {
    if (typeof this.value !== 'string' || !(allowed as readonly string[]).includes(this.value)) {
      this.fail(`one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
    }
    return this.value as T;
  }
}

class ObjectReader {
  constructor(
    private readonly record: Record<string, unknown>,
    private readonly path: string,
  ) {}

  field(name: string): Reader {
    return new Reader(Object.hasOwn(this.record, name) ? this.record[name] : undefined, `${this.path}.${name}`);
  }

  /** The field, or undefined when it is absent. */
  optional(name: string): Reader | undefined {
    return Object.hasOwn(this.record, name) ? this.field(name) : undefined;
  }
}

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
