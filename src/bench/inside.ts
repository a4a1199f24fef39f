/**
 * The part of `pidgen bench` that runs as PID 1 of the bench's child PID
 * namespace (see namespace.ts). Its /proc lists only the bench's population
 * and the bench's own few tasks.
 *
 * Usage (by namespace.ts only): node inside.js '<job JSON>'
 *
 * Prints progress on stderr and one JSON reply line (job.ts) on stdout, then
 * exits; the kernel then kills the whole population with it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Guard } from '../guard/guard.js';
import { bpfGuardKernelGap } from '../host/kernel.js';
import { readPidMax } from '../host/pidns.js';
import type { SnapshotSource } from '../model/snapshot.js';
import type { ForkJob, ForkReply, Job, ScanJob, ScanReply } from './job.js';
import type { CliSteps, ForkPathResult, KernelPass, Measures, SkippedTool, ToolId, ToolResult } from './results.js';
import { pairedRatio, roundOrder, summarize } from './stats.js';

/** Longest a single tool run may take before the bench gives up on it. */
const TOOL_TIMEOUT_MS = 10 * 60_000;
const POPULATION_TIMEOUT_MS = 5 * 60_000;

const PS_FIELDS = 'pid,tid,ppid,stat,comm,args';

/**
 * Why no BPF guard loads on this kernel (Linux < 5.12), or undefined. There
 * the pidgen rows use the cursor guard, as `--guard auto` would, and the
 * fork path has no guard to measure.
 */
const guardGap = bpfGuardKernelGap();
/** The guard the pidgen rows take their snapshots with. */
const ROW_GUARD = guardGap ? 'cursor' : 'bpf';

function progress(text: string): void {
  process.stderr.write(`pidgen bench: ${text}\n`);
}

const count = (n: number) => n.toLocaleString('en-US');
const ms = (ns: number) =>
  (ns / 1e6).toLocaleString('en-US', { minimumFractionDigits: ns >= 1e8 ? 0 : 1, maximumFractionDigits: ns >= 1e8 ? 0 : 1 });

/** A tool that cannot run here (not installed, source not built): skipped, not failed. */
class Unavailable extends Error {}

interface Sample {
  wallNs: number;
  rssBytes: number;
  tasksSeen?: number;
  firstCallNs?: number;
  /** Loading the task iterator (bpf-iter), outside the timed call. */
  openNs?: number;
  /** pidgen library: one profiled call's phases (src/profile.ts). */
  phases?: Record<string, number>;
  /** pidgen bpf-iter library: the kernel pass alone. */
  kernel?: Record<string, number | string>;
  version?: string;
  note?: string;
}

interface Tool {
  id: ToolId;
  label: string;
  what: string;
  measures: Measures;
  run(): Sample;
}

interface RunStat {
  wallNs: number;
  maxRssKb: number;
  exitCode: number;
  signal: number;
  stderr: string;
}

/** Runs a command under runstat: its whole-process time and peak RSS, stdout to `outFile`. */
function runMeasured(runstat: string, outFile: string, command: string, args: string[]): RunStat {
  const result = spawnSync(runstat, [outFile, command, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: TOOL_TIMEOUT_MS,
    maxBuffer: 64 << 20,
  });
  if (result.error) throw new Error(`run ${command}: ${result.error.message}`);
  const line = result.stdout.trim().split('\n').pop() ?? '';
  if (result.status !== 0 || !line.startsWith('{')) {
    throw new Error(`runstat for ${command} exited with ${result.status ?? result.signal}: ${result.stderr.trim()}`);
  }
  return { ...(JSON.parse(line) as Omit<RunStat, 'stderr'>), stderr: result.stderr };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function sourceLabel(source: SnapshotSource): string {
  return `pidgen ${source}`;
}

/** `pidgen snapshot --source SOURCE --guard bpf --format json` as a process (`--guard cursor` before 5.12). */
function cliTool(job: ScanJob, source: SnapshotSource, id: ToolId, what: string): Tool {
  return {
    id,
    label: sourceLabel(source),
    what,
    measures: 'whole-process',
    run() {
      // JSON to stdout, which runstat sends to /dev/null. Not `-o /dev/null`:
      // -o writes a temp file and renames it over the target.
      const stat = runMeasured(job.helpers.runstat, '/dev/null', job.node, [
        job.cli, 'snapshot', '--source', source, '--guard', ROW_GUARD, '--format', 'json',
      ]);
      if (stat.exitCode === 2) throw new Unavailable(`the CLI refused --source ${source}: ${firstLine(stat.stderr)}`);
      if (stat.exitCode !== 0) throw new Error(`pidgen snapshot exited with ${stat.exitCode}: ${firstLine(stat.stderr)}`);
      return { wallNs: stat.wallNs, rssBytes: stat.maxRssKb * 1024 };
    },
  };
}

/**
 * A bpffs of the bench's own over /sys/fs/bpf, in its private mount
 * namespace: the rows "nothing pinned" see no pin the host may hold, and
 * the pin the pinned row needs lives and dies with this namespace (an
 * unmounted bpffs drops its pins), whatever ends the bench. Returns why it
 * could not, or undefined.
 */
function privateBpffs(): string | undefined {
  const mounted = spawnSync('mount', ['-t', 'bpf', 'pidgen-bench', '/sys/fs/bpf'], { encoding: 'utf8' });
  if (mounted.error) return `mount -t bpf: ${mounted.error.message}`;
  if (mounted.status !== 0) return `mount -t bpf on /sys/fs/bpf: ${mounted.stderr.trim() || `exit ${mounted.status}`}`;
  return undefined;
}

/** `pidgen pin` or `pidgen unpin` in this namespace; the error's first line, or undefined. */
function pinCommand(job: ScanJob, command: 'pin' | 'unpin'): string | undefined {
  const result = spawnSync(job.node, [job.cli, command], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS });
  if (result.error) return `pidgen ${command}: ${result.error.message}`;
  return result.status === 0 ? undefined : `pidgen ${command} exited with ${result.status}: ${firstLine(result.stderr)}`;
}

/** The median of each numeric field over `reports`. */
function medians(reports: readonly Record<string, unknown>[]): Record<string, number> {
  const keys = new Set(reports.flatMap((r) => Object.keys(r).filter((k) => typeof r[k] === 'number')));
  const out: Record<string, number> = {};
  for (const key of keys) out[key] = summarize(reports.flatMap((r) => (typeof r[key] === 'number' ? [r[key] as number] : []))).median;
  return out;
}

/** The CLI's steps, each timed in a process that does one snapshot (snapshot-child cli-phases). */
function cliSteps(job: ScanJob): CliSteps | string {
  const reports: Record<string, unknown>[] = [];
  for (let run = 0; run <= job.runs; run++) {
    const outFile = join(job.workDir, 'cli-phases.json');
    let stat: RunStat;
    try {
      stat = runMeasured(job.helpers.runstat, outFile, job.node, [job.snapshotChild, 'cli-phases']);
    } catch (error) {
      return (error as Error).message;
    }
    if (stat.exitCode !== 0) return `the CLI steps child exited with ${stat.exitCode}: ${firstLine(stat.stderr)}`;
    if (run > 0) reports.push(readJson<Record<string, unknown>>(outFile));
  }
  const top = medians(reports);
  const phases = medians(reports.map((r) => (r.phases ?? {}) as Record<string, unknown>));
  return {
    nodeStartNs: top.nodeStartNs ?? 0,
    importNs: top.importNs ?? 0,
    snapshotNs: top.snapshotNs ?? 0,
    phases,
    outputNs: top.outputNs ?? 0,
    runs: reports.length,
  };
}

/** The tools of a scan, in the order a forward round runs them. */
function scanTools(job: ScanJob): Tool[] {
  const { runstat } = job.helpers;
  const tools: Tool[] = [];
  for (const source of job.sources) {
    tools.push({
      id: `pidgen-${source}-library`,
      label: sourceLabel(source),
      what: source === 'bpf-iter' ? 'snapshot() call, iterator held, in process' : 'snapshot() call, in process',
      measures: 'in-process',
      run() {
        const outFile = join(job.workDir, `library-${source}.json`);
        const stat = runMeasured(runstat, outFile, job.node, [job.snapshotChild, source]);
        if (stat.exitCode !== 0) throw new Error(`snapshot child exited with ${stat.exitCode}: ${firstLine(stat.stderr)}`);
        const report = readJson<{
          unavailable?: string;
          failed?: string;
          wallNs: number;
          firstCallNs: number;
          openNs?: number;
          phases?: Record<string, number>;
          kernel?: Record<string, number | string>;
          tasks: number;
          coherent: boolean;
          attempts: number;
          source: string;
        }>(outFile);
        if (report.unavailable) throw new Unavailable(report.unavailable);
        if (report.failed) throw new Error(report.failed);
        const notes: string[] = [];
        if (report.source !== source) notes.push(`asked for source ${source}, got ${report.source}`);
        if (!report.coherent) notes.push('a snapshot was not coherent on a population that does not change');
        return {
          wallNs: report.wallNs,
          rssBytes: stat.maxRssKb * 1024,
          tasksSeen: report.tasks,
          firstCallNs: report.firstCallNs,
          ...(report.openNs !== undefined ? { openNs: report.openNs } : {}),
          ...(report.phases ? { phases: report.phases } : {}),
          ...(report.kernel ? { kernel: report.kernel } : {}),
          ...(notes.length ? { note: notes.join('; ') } : {}),
        };
      },
    });
    tools.push(cliTool(job, source, `pidgen-${source}-cli`, '`pidgen snapshot` process'));
  }
  tools.push({
    id: 'ps',
    label: `ps -eLo ${PS_FIELDS}`,
    what: 'process',
    measures: 'whole-process',
    run() {
      const stat = runMeasured(runstat, '/dev/null', 'ps', ['-eLo', PS_FIELDS]);
      if (stat.exitCode === 127) throw new Unavailable('ps is not installed (apt-get install procps)');
      if (stat.exitCode !== 0) throw new Error(`ps exited with ${stat.exitCode}: ${firstLine(stat.stderr)}`);
      return { wallNs: stat.wallNs, rssBytes: stat.maxRssKb * 1024 };
    },
  });
  // The floor under every `pidgen snapshot` row: Node starting and exiting
  // with nothing to do.
  tools.push({
    id: 'node-start',
    label: 'node -e 0',
    what: 'process: Node starting and exiting, nothing else',
    measures: 'whole-process',
    run() {
      const stat = runMeasured(runstat, '/dev/null', job.node, ['-e', '0']);
      if (stat.exitCode !== 0) throw new Error(`node -e 0 exited with ${stat.exitCode}: ${firstLine(stat.stderr)}`);
      return { wallNs: stat.wallNs, rssBytes: stat.maxRssKb * 1024 };
    },
  });
  tools.push({
    id: 'psutil',
    label: 'psutil',
    what: 'process_iter() loop, in process',
    measures: 'in-process',
    run() {
      const outFile = join(job.workDir, 'psutil.json');
      if (!existsSync(job.python)) throw new Unavailable(`${job.python} does not exist`);
      const stat = runMeasured(runstat, outFile, job.python, [job.helpers.psutilScript]);
      if (stat.exitCode === 3) throw new Unavailable(`psutil is not installed for ${job.python} (apt-get install python3-psutil)`);
      if (stat.exitCode !== 0) throw new Error(`psutil-scan exited with ${stat.exitCode}: ${firstLine(stat.stderr)}`);
      const report = readJson<{ walkNs: number; tasks: number; psutil: string; python: string }>(outFile);
      return {
        wallNs: report.walkNs,
        rssBytes: stat.maxRssKb * 1024,
        tasksSeen: report.tasks,
        version: `psutil ${report.psutil}, Python ${report.python}`,
      };
    },
  });
  tools.push({
    id: 'ref-walker',
    label: 'reference walker (C)',
    what: 'walk, in process',
    measures: 'in-process',
    run() {
      const outFile = join(job.workDir, 'ref-walker.json');
      const stat = runMeasured(runstat, outFile, job.helpers.refWalker, job.pidfd ? [] : ['--no-pidfd']);
      if (stat.exitCode !== 0) throw new Error(`ref-walker exited with ${stat.exitCode}: ${firstLine(stat.stderr)}`);
      const report = readJson<{ walkNs: number; tasks: number }>(outFile);
      return { wallNs: report.walkNs, rssBytes: stat.maxRssKb * 1024, tasksSeen: report.tasks };
    },
  });
  return tools;
}

/**
 * Raises this namespace's pid_max if the population would not fit (per
 * namespace since 6.14; the host's is never touched). Returns a note, or
 * undefined when nothing was changed.
 */
function ensurePidMax(tasks: number): string | undefined {
  const needed = tasks + 4096;
  let current: number;
  try {
    current = readPidMax();
  } catch {
    return undefined;
  }
  if (current >= needed) return undefined;
  const wanted = Math.max(65_536, 2 ** Math.ceil(Math.log2(needed)));
  try {
    writeFileSync('/proc/sys/kernel/pid_max', String(wanted));
    return `raised the bench namespace's pid_max from ${current} to ${wanted}`;
  } catch (error) {
    return `could not raise the bench namespace's pid_max from ${current} (${(error as NodeJS.ErrnoException).code}); the population may not fit`;
  }
}

/** Starts the population and resolves once every task exists. */
function startPopulation(job: ScanJob): Promise<ChildProcess> {
  const child = spawn(job.helpers.population, [String(job.processes), String(job.threadsPerProcess)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`population: not ready after ${POPULATION_TIMEOUT_MS / 1000} s`));
    }, POPULATION_TIMEOUT_MS);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (/^ready /m.test(stdout)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`population: ${error.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`population exited with ${code ?? signal} before it was ready: ${stderr.trim()}`));
    });
  });
}

async function runScan(job: ScanJob): Promise<ScanReply> {
  const notes: string[] = [];
  const pidMaxNote = ensurePidMax(job.processes * job.threadsPerProcess);
  if (pidMaxNote) notes.push(pidMaxNote);
  if (guardGap) notes.push(`no BPF guard loads here (${guardGap}): the pidgen rows take their snapshots with the cursor guard`);

  const populationTasks = job.processes * job.threadsPerProcess;
  progress(`${count(job.tasks)} tasks: creating ${count(job.processes)} processes × ${job.threadsPerProcess} threads`);
  const started = process.hrtime.bigint();
  const population = await startPopulation(job);
  const populationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  progress(`${count(job.tasks)} tasks: ${count(populationTasks)} tasks ready in ${populationSeconds.toFixed(1)} s`);

  const bpffsProblem = privateBpffs();
  if (bpffsProblem) notes.push(`no private bpffs for the bench (${bpffsProblem}): a pin the host holds would be used by the CLI rows, and the pinned row is skipped`);
  let tools = scanTools(job);
  const skipped: SkippedTool[] = [];
  let pidgenFailed = false;
  const samples = new Map<ToolId, Sample[]>();
  const dropTool = (tool: Tool, error: unknown) => {
    const unavailable = error instanceof Unavailable;
    const reason = `${unavailable ? '' : 'failed: '}${(error as Error).message}`;
    skipped.push({ id: tool.id, label: `${tool.label} (${tool.what})`, reason });
    if (!unavailable && tool.id.startsWith('pidgen-')) pidgenFailed = true;
    tools = tools.filter((t) => t !== tool);
    samples.delete(tool.id);
    progress(`${count(job.tasks)} tasks: skipping ${tool.label} (${tool.what}): ${reason}`);
  };

  // Round 0 is the warm-up: it fills the dentry and inode caches for the
  // population's /proc entries, and finds out which tools run here.
  for (let round = 0; round <= job.runs; round++) {
    const head = round === 0 ? 'warm-up' : `run ${round}/${job.runs}`;
    process.stderr.write(`pidgen bench: ${count(job.tasks)} tasks, ${head}:`);
    for (const tool of roundOrder(tools, round)) {
      let sample: Sample;
      try {
        sample = tool.run();
      } catch (error) {
        process.stderr.write('\n');
        dropTool(tool, error);
        continue;
      }
      process.stderr.write(` ${tool.id} ${ms(sample.wallNs)} ms;`);
      if (round === 0) {
        samples.set(tool.id, []);
        continue;
      }
      samples.get(tool.id)?.push(sample);
    }
    process.stderr.write('\n');
  }

  // The CLI taken apart, and with a pin in place: after the rounds, so
  // nothing above ran with a pin.
  let steps: CliSteps | undefined;
  if (tools.some((t) => t.id === 'pidgen-bpf-iter-cli')) {
    progress(`${count(job.tasks)} tasks: the CLI's steps, ${job.runs} runs`);
    const measured = cliSteps(job);
    if (typeof measured === 'string') notes.push(`the CLI's steps were not measured: ${measured}`);
    else steps = measured;
    const pinned = cliTool(job, 'bpf-iter', 'pidgen-bpf-iter-cli-pinned', '`pidgen snapshot` process, after `pidgen pin`');
    const why = bpffsProblem ?? (guardGap ? `\`pidgen pin\` needs the BPF guard: ${guardGap}` : pinCommand(job, 'pin'));
    if (why) skipped.push({ id: pinned.id, label: `${pinned.label} (${pinned.what})`, reason: why });
    else {
      try {
        process.stderr.write(`pidgen bench: ${count(job.tasks)} tasks, pinned:`);
        const runs: Sample[] = [];
        for (let round = 0; round <= job.runs; round++) {
          const sample = pinned.run();
          process.stderr.write(` ${ms(sample.wallNs)} ms;`);
          if (round > 0) runs.push(sample);
        }
        process.stderr.write('\n');
        tools.push(pinned);
        samples.set(pinned.id, runs);
      } catch (error) {
        process.stderr.write('\n');
        dropTool(pinned, error);
      } finally {
        const unpinned = pinCommand(job, 'unpin');
        if (unpinned) notes.push(`${unpinned} (the pin goes with the bench's bpffs when it ends)`);
      }
    }
  }

  // What /proc held during the runs, as the reference walker counted it.
  const walkerSamples = samples.get('ref-walker');
  const tasksInNamespace = walkerSamples?.at(-1)?.tasksSeen ?? populationTasks;
  const results: ToolResult[] = [];
  for (const tool of tools) {
    const runs = samples.get(tool.id) ?? [];
    if (runs.length === 0) continue;
    const wallNs = summarize(runs.map((s) => s.wallNs));
    const last = runs.at(-1)!;
    const toolNotes = [...new Set(runs.flatMap((s) => (s.note ? [s.note] : [])))];
    const firstCalls = runs.flatMap((s) => (s.firstCallNs !== undefined ? [s.firstCallNs] : []));
    if (firstCalls.length) {
      const first = summarize(firstCalls);
      toolNotes.push(`the first snapshot() call in a fresh process (cold JIT) took ${ms(first.median)} ms (median)`);
    }
    const opens = runs.flatMap((s) => (s.openNs !== undefined ? [s.openNs] : []));
    if (opens.length) {
      toolNotes.push(
        `loading the task iterator took ${ms(summarize(opens).median)} ms (median), outside the timed call: ` +
          "snapshot({ source: 'bpf-iter' }) without a held TaskIterator pays it on every call",
      );
    }
    const phaseRuns = runs.flatMap((r) => (r.phases ? [r.phases] : []));
    const kernelRuns = runs.flatMap((r) => (r.kernel ? [r.kernel] : []));
    const kernel = kernelRuns.length ? medians(kernelRuns) : undefined;
    const kernelNotes = new Set(kernelRuns.flatMap((run) => Object.entries(run).flatMap(([key, value]) => (typeof value === 'string' ? [`kernel pass: ${key}: ${value}`] : []))));
    toolNotes.push(...kernelNotes);
    if (last.tasksSeen !== undefined && Math.abs(last.tasksSeen - tasksInNamespace) > 16) {
      toolNotes.push(`saw ${count(last.tasksSeen)} tasks; the reference walker saw ${count(tasksInNamespace)}`);
    }
    results.push({
      id: tool.id,
      label: tool.label,
      measures: tool.measures,
      what: tool.what,
      wallNs,
      usPerTask: wallNs.median / 1e3 / tasksInNamespace,
      peakRssBytes: Math.max(...runs.map((s) => s.rssBytes)),
      ...(last.tasksSeen !== undefined ? { tasksSeen: last.tasksSeen } : {}),
      ...(toolNotes.length ? { notes: toolNotes } : {}),
      ...(firstCalls.length ? { firstCallNs: summarize(firstCalls) } : {}),
      ...(phaseRuns.length ? { phases: medians(phaseRuns) } : {}),
      ...(kernel && kernel.withArgvNs !== undefined && kernel.withoutArgvNs !== undefined
        ? { kernelPass: kernel as unknown as KernelPass }
        : {}),
    });
    if (last.version) notes.push(`${tool.label}: ${last.version}`);
  }
  population.kill('SIGKILL');
  return {
    mode: 'scan',
    result: {
      tasks: job.tasks,
      processes: job.processes,
      threadsPerProcess: job.threadsPerProcess,
      tasksInNamespace,
      tools: results,
      skipped,
      populationSeconds,
      ...(steps ? { cliSteps: steps } : {}),
    },
    notes,
    pidgenFailed,
  };
}

interface ForkbenchRun {
  nsPerFork: number;
  /** With --bpf-stats: runs and run time of pidgen's programs during the loop. */
  bpfRuns?: number;
  bpfNs?: number;
}

/** One forkbench run, pinned to one CPU (see bench/forkbench.c). */
function forkbench(binary: string, forks: number, extra: string[] = []): ForkbenchRun {
  const result = spawnSync(binary, [String(forks), '--pin', ...extra], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS });
  if (result.status !== 0) throw new Error(`forkbench exited with ${result.status ?? result.signal}: ${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as ForkbenchRun;
}

type GuardState = 'none' | 'idle' | 'logging';

/**
 * Runs `body` with the guard in `state`. A fresh load each time: 'none'
 * must have nothing attached, and the load itself stays outside the timed
 * loop. Returns the guard's attach point and the records the log dropped.
 */
function withGuard<T>(state: GuardState, body: () => T): { value: T; attach?: string; logDrops: bigint } {
  if (state === 'none') return { value: body(), logDrops: 0n };
  const guard = Guard.open({ pinned: 'never' });
  try {
    if (state === 'logging') guard.beginAllocationLog();
    const value = body();
    let logDrops = 0n;
    if (state === 'logging') {
      guard.drainAllocationLog();
      logDrops = guard.health().logDrops;
      guard.endAllocationLog();
    }
    return { value, attach: guard.attach, logDrops };
  } finally {
    guard.close();
  }
}

function runForkPath(job: ForkJob): ForkReply {
  // Before 5.12 no guard loads: "no guard" is all there is to time.
  const states: GuardState[] = guardGap ? ['none'] : ['none', 'idle', 'logging'];
  const samples: Record<GuardState, number[]> = { none: [], idle: [], logging: [] };
  let attach = '';
  let logDrops = 0n;
  for (let round = 0; round <= job.runs; round++) {
    const head = round === 0 ? 'warm-up' : `run ${round}/${job.runs}`;
    process.stderr.write(`pidgen bench: fork path, ${head}:`);
    for (const state of roundOrder(states, round)) {
      const run = withGuard(state, () => forkbench(job.helpers.forkbench, job.forks));
      attach = run.attach ?? attach;
      logDrops += run.logDrops;
      process.stderr.write(` ${state} ${(run.value.nsPerFork / 1e3).toFixed(1)} µs/fork;`);
      if (round > 0) samples[state].push(run.value.nsPerFork);
    }
    process.stderr.write('\n');
  }

  const notes: string[] = [];
  if (existsSync('/sys/fs/bpf/pidgen/meta')) {
    notes.push('a pinned pidgen counter (`pidgen pin`) is attached on this host, so "no guard" includes its cost too');
  }
  if (guardGap) {
    progress(`fork path: only "no guard" was measured: ${guardGap}`);
    return {
      mode: 'fork',
      noGuardOnly: { forksPerRun: job.forks, runs: job.runs, pinnedToOneCpu: true, noGuard: summarize(samples.none), guardMissing: guardGap },
      notes,
    };
  }

  // The kernel's own account of the programs' run time: exact where the
  // paired timing above is at the mercy of the machine's noise.
  let programNsPerRun: ForkPathResult['programNsPerRun'] = null;
  try {
    const forks = Math.min(job.forks, 2000);
    const idle = withGuard('idle', () => forkbench(job.helpers.forkbench, forks, ['--bpf-stats', 'pidgen'])).value;
    const logging = withGuard('logging', () => forkbench(job.helpers.forkbench, forks, ['--bpf-stats', 'pidgen'])).value;
    if (idle.bpfRuns && logging.bpfRuns) {
      programNsPerRun = { idle: idle.bpfNs! / idle.bpfRuns, logging: logging.bpfNs! / logging.bpfRuns };
      progress(
        `fork path: pidgen's program runs ${(programNsPerRun.idle / 1e3).toFixed(2)} µs per fork idle, ` +
          `${(programNsPerRun.logging / 1e3).toFixed(2)} µs logging (kernel BPF run-time statistics)`,
      );
    }
  } catch (error) {
    notes.push(`BPF run-time statistics unavailable: ${(error as Error).message}`);
  }
  return {
    mode: 'fork',
    result: {
      forksPerRun: job.forks,
      runs: job.runs,
      attach,
      pinnedToOneCpu: true,
      noGuard: summarize(samples.none),
      idle: summarize(samples.idle),
      logging: summarize(samples.logging),
      idleRatio: pairedRatio(samples.idle, samples.none),
      loggingRatio: pairedRatio(samples.logging, samples.none),
      logDrops: Number(logDrops),
      programNsPerRun,
    },
    notes,
  };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as Job;
  const reply = job.mode === 'scan' ? await runScan(job) : runForkPath(job);
  // stdout is a pipe: on Linux Node writes it synchronously, so exiting
  // right after loses nothing. Exiting ends the namespace and its population.
  process.stdout.write(JSON.stringify(reply) + '\n');
  process.exit(0);
}

try {
  await main();
} catch (error) {
  progress(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
