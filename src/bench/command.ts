/**
 * `pidgen bench`: what a scan costs, against the tools people use today, on
 * a population of known size in a child PID namespace.
 *
 * For each task count it creates processes × threads sleepers in a fresh PID
 * namespace and times, in the same runs and taking turns: pidgen's
 * snapshot() per source (in process, and as the whole `pidgen snapshot`
 * process), `ps -eLo`, psutil, and a reference C walker that reads exactly
 * what the procfs source reads. It also times fork+exit+wait with and
 * without the BPF guard. Progress goes to stderr, a Markdown report to
 * stdout, and optionally JSON (`--json`) and an SVG chart (`--svg`) to files.
 *
 * Needs root: it creates PID namespaces and loads the BPF guard.
 */
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fsError, PidgenError, UsageError } from '../errors.js';
import { bpfGuardKernelGap, kernelAtLeast, kernelVersion } from '../host/kernel.js';
import { writeFileAtomic } from '../output/atomic-write.js';
import { packageRoot, packageVersion } from '../package.js';
import type { SnapshotSource } from '../model/snapshot.js';
import { compileHelpers } from './helpers.js';
import type { ForkReply, ScanJob, ScanReply } from './job.js';
import { machineFacts } from './machine.js';
import { BUILT_BENCH_DIR, INSIDE_SCRIPT, NamespaceRun } from './namespace.js';
import { BENCH_SCHEMA, evaluateTargets, type BenchResults, type ForkNoGuardResult, type ForkPathResult, type ScanResult } from './results.js';
import { renderChart } from './svg.js';
import { formatNumber, renderReport } from './table.js';

/**
 * `pidgen bench` options, as the CLI passes them (all optional; defaults
 * below). Counts may be numbers or their decimal text, so commander can
 * pass its strings through; every value is checked here (UsageError).
 */
export interface BenchCommandOptions {
  /** Task counts to measure, a comma list: `"5000"` or `"1000,5000,20000"` (the default). */
  tasks?: string;
  /** Threads per process in the population, 1-1000 (default 4): tasks / this many processes. */
  threadsPerProcess?: number | string;
  /** Measured runs per tool after one warm-up run, 1-1000; the report gives the median (default 5). */
  runs?: number | string;
  /** fork+exit+wait iterations per run of the guard-overhead benchmark; 0 skips it (default 4000). */
  forks?: number | string;
  /** Also write the results as JSON (`schema: "pidgen.bench/1"`) to this file. */
  json?: string;
  /** Also write an SVG chart of time against task count to this file. */
  svg?: string;
}

export const DEFAULT_TASKS = [1_000, 5_000, 20_000];
export const DEFAULT_THREADS_PER_PROCESS = 4;
export const DEFAULT_RUNS = 5;
export const DEFAULT_FORKS = 4_000;
const MAX_TASKS = 1_000_000;

export interface BenchSettings {
  tasks: number[];
  threadsPerProcess: number;
  runs: number;
  forks: number;
  json?: string;
  svg?: string;
}

function integerIn(name: string, value: unknown, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}, got '${String(value)}'`);
  }
  return n;
}

/** Parses `--tasks`: a comma list of task counts, deduplicated and ascending. */
export function parseTaskCounts(text: string): number[] {
  const parts = text.split(',').map((part) => part.trim().replace(/_/g, ''));
  if (parts.some((part) => part === '')) throw new UsageError(`--tasks must be a comma list of task counts, got '${text}'`);
  const counts = parts.map((part) => integerIn('--tasks', part, 1, MAX_TASKS));
  return [...new Set(counts)].sort((a, b) => a - b);
}

/** Validates and defaults the options; throws UsageError (exit 2) on a bad value. */
export function benchSettings(options: BenchCommandOptions): BenchSettings {
  return {
    tasks: options.tasks === undefined ? [...DEFAULT_TASKS] : parseTaskCounts(options.tasks),
    threadsPerProcess: integerIn('--threads-per-process', options.threadsPerProcess ?? DEFAULT_THREADS_PER_PROCESS, 1, 1000),
    runs: integerIn('--runs', options.runs ?? DEFAULT_RUNS, 1, 1000),
    forks: integerIn('--forks', options.forks ?? DEFAULT_FORKS, 0, 10_000_000),
    ...(options.json !== undefined ? { json: options.json } : {}),
    ...(options.svg !== undefined ? { svg: options.svg } : {}),
  };
}

function progress(text: string): void {
  process.stderr.write(`pidgen bench: ${text}\n`);
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new PidgenError('bench: needs root: it creates PID namespaces for its task population and loads the BPF guard', {
      code: 'EPERM',
      op: 'bench',
      hint: 'run as root (e.g. `sudo npx pidgen bench`)',
    });
  }
}

/** Tasks the host namespace holds now (the 4th field of /proc/loadavg is running/total). */
/** The 1, 5 and 15 minute load averages. */
function loadAverages(): [number, number, number] {
  const [one, five, fifteen] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  return [one ?? 0, five ?? 0, fifteen ?? 0];
}

function hostTaskCount(): number {
  const field = readFileSync('/proc/loadavg', 'utf8').split(' ')[3] ?? '0/0';
  return Number(field.split('/')[1] ?? 0);
}

/**
 * Every task of the population also takes a PID in the host's namespace and
 * counts against kernel.threads-max, and the bench never raises those: say
 * so before forking thousands of tasks into a wall.
 */
function checkHostHeadroom(tasks: number): void {
  const read = (path: string) => Number(readFileSync(path, 'utf8').trim());
  const inUse = hostTaskCount();
  const margin = 512;
  for (const [path, name] of [
    ['/proc/sys/kernel/pid_max', 'kernel.pid_max'],
    ['/proc/sys/kernel/threads-max', 'kernel.threads-max'],
  ] as const) {
    const limit = read(path);
    if (Number.isFinite(limit) && tasks + inUse + margin > limit) {
      throw new PidgenError(
        `bench: ${tasks.toLocaleString('en-US')} tasks do not fit: ${name} is ${limit} and ${inUse} tasks already exist`,
        {
          code: 'EAGAIN',
          op: 'bench',
          target: path,
          hint: `ask for fewer tasks, or raise ${name} (pidgen bench never changes the host's settings)`,
        },
      );
    }
  }
}

/**
 * Writes a result file. A device or FIFO (`/dev/stdout`, a pipe) is written
 * in place; a regular file atomically, since an atomic write renames over
 * the target and would replace a device node with a file.
 */
async function writeResultFile(path: string, text: string): Promise<void> {
  let special = false;
  try {
    special = !statSync(path).isFile();
  } catch {
    // Missing: the usual case.
  }
  if (special) writeFileSync(path, text);
  else await writeFileAtomic(path, text);
}

/** Sources the bench tries; one this pidgen does not offer yet is skipped with its reason. */
const SOURCES: SnapshotSource[] = ['procfs', 'bpf-iter'];

/**
 * Runs `pidgen bench` and returns the exit code: 0, or 1 when a pidgen row
 * failed (its reason is in the report). Throws UsageError on bad options and
 * PidgenError when the bench cannot run (not root, no C compiler, a run in
 * the namespace failed). Ctrl-C and SIGTERM end the population and remove
 * the scratch directory before exiting (130 / 143).
 */
export async function runBenchCommand(options: BenchCommandOptions, out: (text: string) => void): Promise<number> {
  const settings = benchSettings(options);
  requireRoot();
  if (!existsSync(INSIDE_SCRIPT)) {
    throw new PidgenError(`bench: ${INSIDE_SCRIPT} is missing: the TypeScript is not built`, {
      code: 'ENOENT',
      op: 'bench',
      target: INSIDE_SCRIPT,
      hint: 'build it with `npm run build:ts`',
    });
  }
  // Fail now, not after minutes of measuring, if a result file cannot be written.
  for (const path of [settings.json, settings.svg]) {
    if (path === undefined) continue;
    try {
      accessSync(dirname(resolve(path)), constants.W_OK);
    } catch (error) {
      throw fsError('write', path, error);
    }
  }
  const startedAt = new Date().toISOString();
  const workDir = mkdtempSync(join(tmpdir(), 'pidgen-bench-'));
  let current: NamespaceRun | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: ending the population and cleaning up`);
    current?.kill();
    rmSync(workDir, { recursive: true, force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    progress(`compiling the bench's C helpers into ${workDir}`);
    const helpers = compileHelpers(workDir);
    const notes: string[] = [];
    let pidgenFailed = false;
    const machine = machineFacts();
    const loadAtStart = loadAverages();
    if (loadAtStart[0] > machine.cores / 2) {
      const busy = `the machine was busy when the bench started (load average ${loadAtStart[0].toFixed(2)} on ${machine.cores} cores): expect noisy numbers`;
      progress(`warning: ${busy}`);
      notes.push(busy);
    }

    let forkPath: ForkPathResult | null = null;
    let noGuardFork: ForkNoGuardResult | undefined;
    if (settings.forks > 0) {
      const gap = bpfGuardKernelGap();
      progress(`fork path: ${settings.forks} fork+exit+wait per run; ${gap ? `no guard only (${gap})` : 'no guard, idle guard, logging guard, taking turns'}`);
      current = NamespaceRun.start({ mode: 'fork', forks: settings.forks, runs: settings.runs, helpers }, 'fork benchmark');
      const reply = (await current.reply()) as ForkReply;
      if ('noGuardOnly' in reply) {
        const fork = reply.noGuardOnly;
        noGuardFork = fork;
        const median = formatNumber(fork.noGuard.median / 1e3);
        notes.push(`fork path: only "no guard" was measured (${median} µs per fork+exit+wait, median): the idle and logging rows are missing because ${fork.guardMissing}`);
      } else {
        forkPath = reply.result;
      }
      notes.push(...reply.notes);
    }

    const scans: ScanResult[] = [];
    for (const tasks of settings.tasks) {
      checkHostHeadroom(tasks);
      const job: ScanJob = {
        mode: 'scan',
        tasks,
        processes: Math.ceil(tasks / settings.threadsPerProcess),
        threadsPerProcess: Math.min(settings.threadsPerProcess, tasks),
        runs: settings.runs,
        helpers,
        workDir,
        node: process.execPath,
        cli: join(packageRoot, 'dist', 'src', 'cli', 'main.js'),
        snapshotChild: join(BUILT_BENCH_DIR, 'snapshot-child.js'),
        sources: SOURCES,
        pidfd: kernelAtLeast(kernelVersion(), 6, 9),
        python: '/usr/bin/python3',
      };
      current = NamespaceRun.start(job, `scan of ${tasks} tasks`);
      const reply = (await current.reply()) as ScanReply;
      scans.push(reply.result);
      for (const note of reply.notes) if (!notes.includes(note)) notes.push(note);
      pidgenFailed ||= reply.pidgenFailed;
    }
    current = undefined;

    if (existsSync('/sys/fs/bpf/pidgen/meta')) {
      notes.push('`pidgen snapshot --guard bpf` used the counter pinned by `pidgen pin`, so its process time has no BPF load in it');
    }
    const results: BenchResults = {
      schema: BENCH_SCHEMA,
      pidgenVersion: packageVersion,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine,
      loadAverage: { atStart: loadAtStart, atEnd: loadAverages() },
      settings: { tasks: settings.tasks, threadsPerProcess: settings.threadsPerProcess, runs: settings.runs, forks: settings.forks },
      scans,
      forkPath,
      ...(noGuardFork ? { forkPathNoGuard: noGuardFork } : {}),
      targets: evaluateTargets(scans, forkPath, noGuardFork),
      notes,
    };
    out(renderReport(results));
    if (settings.json !== undefined) await writeResultFile(settings.json, JSON.stringify(results, null, 2) + '\n');
    if (settings.svg !== undefined) await writeResultFile(settings.svg, renderChart(results));
    return pidgenFailed ? 1 : 0;
  } finally {
    current?.kill();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(workDir, { recursive: true, force: true });
  }
}
