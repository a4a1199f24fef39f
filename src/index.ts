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
 * @example The `/proc/pid_gen` pattern, with the allocation log
 * ```ts
 * import { Guard } from 'pidgen';
 * using guard = Guard.open();
 * guard.beginAllocationLog();
 * guard.drainAllocationLog(); // the window starts now
 * const pids = myProcWalk();
 * const taken = guard.drainAllocationLog().filter((e) => e.kind === 'new' && e.inum === guard.namespace);
 * if (taken.some((e) => pids.has(e.nr))) {
 *   // a PID the walk saw went to a new task meanwhile: rescan
 * }
 * guard.endAllocationLog();
 * ```
 * The generation alone (`guard.generation()` before and after) is not
 * enough: it rules out a number allocated twice, not a number from before
 * the last wrap that is handed out again. `snapshot()` does all of this,
 * and repairs only what the log names.
 */
export { Guard, ATTACH_ORDER, ATTACH_POINTS, parseAllocationEvents, parseLogEvents } from './guard/guard.js';
export type { AllocationEvent, AttachKind, AttachRefusal, ExitEvent, GuardOptions, LogEvent, NamespaceCounter } from './guard/guard.js';
export { snapshot } from './snapshot/snapshot.js';
export type { GuardChoice, SnapshotOptions } from './snapshot/snapshot.js';
export { TaskIterator } from './iter/task-iter.js';
export type { TaskIteratorOptions } from './iter/task-iter.js';
export { SNAPSHOT_SCHEMA, SNAPSHOT_SCHEMA_V1 } from './model/snapshot.js';
export type { ExitedTask, GuardKind, ProcessEntry, ReusedPid, Snapshot, SnapshotSource, ThreadEntry, UnreadableField } from './model/snapshot.js';
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
