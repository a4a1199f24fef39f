/**
 * pidgen: coherent process snapshots on unpatched Linux.
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
export { Guard, ATTACH_ORDER, ATTACH_POINTS } from './guard/guard.js';
export type { AttachKind, AttachRefusal, GuardOptions, NamespaceCounter } from './guard/guard.js';
export { PidgenError, UsageError } from './errors.js';
export type { PidgenErrorDetails } from './errors.js';
export { runDoctor } from './doctor/checks.js';
export type { DoctorCheck, DoctorReport, CheckStatus } from './doctor/checks.js';
