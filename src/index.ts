/**
 * pidgen: coherent process snapshots on unpatched Linux.
 *
 * @example A snapshot
 * ```ts
 * import { snapshot } from 'pidgen';
 * const snap = await snapshot();
 * if (!snap.coherent) console.warn(snap.reason);
 * ```
 *
 * @example The `/proc/pid_gen` pattern
 * ```ts
 * import { Guard } from 'pidgen';
 * using guard = Guard.open();
 * const before = guard.generation();
 * const pids = myProcWalk();
 * if (guard.generation() !== before) {
 *   // a PID may have been reused during the walk: rescan
 * }
 * ```
 */
export { Guard, ATTACH_ORDER, ATTACH_POINTS, parseAllocationEvents } from './guard/guard.js';
export type { AllocationEvent, AttachKind, AttachRefusal, GuardOptions, NamespaceCounter } from './guard/guard.js';
export { snapshot } from './snapshot/snapshot.js';
export type { GuardChoice, SnapshotOptions } from './snapshot/snapshot.js';
export { TaskIterator } from './iter/task-iter.js';
export type { TaskIteratorOptions } from './iter/task-iter.js';
export { SNAPSHOT_SCHEMA } from './snapshot/types.js';
export type { GuardKind, ProcessEntry, ReusedPid, Snapshot, SnapshotSource, ThreadEntry, UnreadableField } from './snapshot/types.js';
export { toJSON, toJSONL, toJSONObject, fromJSON } from './output/json.js';
export type { SnapshotJson } from './output/json.js';
export { toTable } from './output/table.js';
export { toPerfetto, appendPerfetto, PERFETTO_PROTO_PATH } from './output/perfetto.js';
export type { PerfettoOptions } from './output/perfetto.js';
export { pin, unpin, readPinned, status as pinStatus, PINNED_NAMES } from './pin/pin.js';
export type { PinInfo, PinResult, PinStatus, UnpinResult } from './pin/pin.js';
export { DEFAULT_PIN_DIR } from './guard/guard.js';
export { writeFileAtomic } from './output/atomic-write.js';
export { PidgenError, UsageError } from './errors.js';
export type { PidgenErrorDetails } from './errors.js';
export { runDoctor } from './doctor/checks.js';
export type { DoctorCheck, DoctorReport, CheckStatus } from './doctor/checks.js';
