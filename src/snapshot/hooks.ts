/**
 * Test seams of the snapshot path, kept out of the public API: not in
 * SnapshotOptions, not exported from the package entry. A test (or a test
 * helper process) installs hooks by importing this module directly; nothing
 * in pidgen sets them.
 */
import type { LogEvent } from '../guard/guard.js';

export interface SnapshotHooks {
  /** After the first full walk, before the first checkpoint (reuse a PID on purpose). */
  afterFirstWalk?: () => void | Promise<void>;
  /**
   * The bpf tracker drops a log record when this returns true, as if it had
   * not arrived by that drain: the window-end race (a successor's
   * task_newtask record landing after the last drain) set up on purpose.
   */
  withholdRecord?: (event: LogEvent) => boolean;
  /** `pidgen snapshot -o`: after the temp file is complete, before it is renamed. */
  beforeRename?: () => Promise<void>;
}

let installed: SnapshotHooks = {};

/** Replaces the installed hooks (an empty object removes them). */
export function installSnapshotHooks(hooks: SnapshotHooks): void {
  installed = hooks;
}

export function snapshotHooks(): SnapshotHooks {
  return installed;
}
