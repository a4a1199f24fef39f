/** `pidgen snapshot`: a coherent snapshot of every process and thread. */
import { readFileSync } from 'node:fs';
import { fsError, PidgenError, UsageError } from '../../errors.js';
import { effectiveCapabilities, missingBpfCapabilities } from '../../host/capabilities.js';
import { bpfGuardKernelGap } from '../../host/kernel.js';
import { INIT_PID_NAMESPACE } from '../../host/pidns.js';
import { writeFileAtomic, removePendingTempFiles } from '../../output/atomic-write.js';
import { toJSON, toJSONL } from '../../output/json.js';
import { toTable } from '../../output/table.js';
import { snapshotHooks } from '../../snapshot/hooks.js';
import { snapshot, type GuardChoice } from '../../snapshot/snapshot.js';
import type { Snapshot } from '../../model/snapshot.js';
import { EXIT_NOT_COHERENT, EXIT_OK } from '../report.js';

export type SnapshotFormat = 'json' | 'jsonl' | 'table' | 'perfetto';

export interface SnapshotCommandOptions {
  format?: SnapshotFormat;
  output?: string;
  threads: boolean;
  maxAttempts: number;
  requireCoherent?: boolean;
  append?: boolean;
  guard: GuardChoice;
  source: 'auto' | 'bpf-iter' | 'procfs';
  verbose?: boolean;
}

function render(result: Snapshot, format: Exclude<SnapshotFormat, 'perfetto'>): string {
  if (format === 'table') return toTable(result);
  if (format === 'jsonl') return toJSONL(result);
  return toJSON(result, { pretty: true });
}

/**
 * Perfetto wants root-namespace PIDs (ProcessTree.Process.pid). From inside
 * a child PID namespace they cannot be known, so refuse rather than write
 * namespace-local numbers where trace_processor expects global ones.
 */
async function renderPerfetto(result: Snapshot, existingPath: string | undefined): Promise<Uint8Array> {
  // protobufjs is loaded only for this format.
  const { appendPerfetto, toPerfetto } = await import('../../output/perfetto.js');
  if (result.pidNamespace.inum !== INIT_PID_NAMESPACE) {
    throw new PidgenError(
      `perfetto output: this snapshot is of a child PID namespace (${result.pidNamespace.inum}), whose root-namespace PIDs are not visible from here`,
      {
        code: 'ENOTSUP',
        op: 'write perfetto',
        hint: 'run pidgen in the root PID namespace, or use the library with toPerfetto(snapshot, { rootPidOf })',
      },
    );
  }
  if (existingPath === undefined) return toPerfetto(result);
  let existing: Uint8Array;
  try {
    existing = readFileSync(existingPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return toPerfetto(result);
    throw fsError('read', existingPath, error);
  }
  return appendPerfetto(existing, result);
}

/**
 * Signals end the process without unwinding, so an `-o` write in flight
 * would strand its temp file: remove it, and leave the target untouched.
 * The kernel frees the guard's programs when the process exits.
 */
function onSignalCleanUp(): () => void {
  const handler = (signal: NodeJS.Signals) => {
    removePendingTempFiles();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** One line on why `--guard auto` fell back to the cursor guard. */
function whyNoBpfGuard(): string {
  const missing = missingBpfCapabilities(effectiveCapabilities());
  if (missing.length) return `not root: missing ${missing.join(' and ')}`;
  return bpfGuardKernelGap() ?? 'every attach point was refused; `pidgen doctor` shows why';
}

export async function runSnapshot(options: SnapshotCommandOptions, out: (text: string | Uint8Array) => void): Promise<number> {
  if (options.append && (options.format !== 'perfetto' || options.output === undefined)) {
    throw new UsageError('--append needs --format perfetto and -o FILE (the trace to add the baseline to)');
  }
  if (options.format === 'perfetto' && options.output === undefined && process.stdout.isTTY) {
    throw new UsageError('--format perfetto is binary: write it with -o FILE, or redirect stdout');
  }
  const restore = onSignalCleanUp();
  try {
    const result = await snapshot({
      guard: options.guard,
      source: options.source,
      threads: options.threads,
      maxAttempts: options.maxAttempts,
      verbose: options.verbose ?? false,
    });
    if (result.guard.kind === 'cursor' && options.guard === 'auto') {
      process.stderr.write(`pidgen: notice: no BPF guard here (${whyNoBpfGuard()}); using the unprivileged cursor guard\n`);
    }
    // JSON by default when the output is a file or a pipe; a table for people.
    const format = options.format ?? (options.output === undefined && process.stdout.isTTY ? 'table' : 'json');
    const text =
      format === 'perfetto' ? await renderPerfetto(result, options.append ? options.output : undefined) : render(result, format);
    // A test seam (snapshot/hooks.ts); nothing in pidgen installs it.
    const { beforeRename } = snapshotHooks();
    if (options.output !== undefined) await writeFileAtomic(options.output, text, beforeRename ? { beforeRename } : {});
    else out(text);
    if (options.requireCoherent && !result.coherent) {
      process.stderr.write(`pidgen: snapshot is not coherent: ${result.reason ?? 'unknown reason'}\n`);
      return EXIT_NOT_COHERENT;
    }
    return EXIT_OK;
  } finally {
    restore();
  }
}
