// `pidgen bench` end to end on the real kernel, at a tiny size: it builds its
// helpers, creates a population in a child PID namespace, measures every tool
// and writes the report, JSON and SVG. Only the STRUCTURE of the output is
// checked, never a timing: CI machines are too noisy for that.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchResults } from '../../src/bench/results.js';
import { TOOL_IDS } from '../../src/bench/results.js';
import { FORK_COLUMNS, SCAN_COLUMNS, TARGET_COLUMNS } from '../../src/bench/table.js';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { expectNothingLeft, isRoot } from '../helpers/kernel.js';
import { slow } from '../helpers/slow.js';

const root = join(import.meta.dirname, '..', '..');
const CLI = join(root, 'dist', 'src', 'cli', 'main.js');
/**
 * Before 5.12 no BPF guard loads: the fork path measures "no guard" alone and
 * says why the guard rows are missing, and the pidgen rows use the cursor guard.
 */
const gap = bpfGuardKernelGap();

/** `pidgen bench` with these options, as a user runs it. */
function benchArgs(options: Record<string, string | number>): string[] {
  const flags = Object.entries(options).flatMap(([key, value]) => [
    `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
    String(value),
  ]);
  return [CLI, 'bench', ...flags];
}

/** Host PIDs of tasks named like the bench population (population, pgbench-proc). */
function populationTasks(): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const comm = readFileSync(`/proc/${name}/comm`, 'utf8').trim();
      if (comm === 'pgbench-proc' || comm === 'population') found.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

async function expectNoPopulationLeft(timeoutMs = slow(10_000)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (populationTasks().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(populationTasks()).toEqual([]);
}

/** The rows of the Markdown table that follows a heading, split into cells. */
function tableAfter(report: string, heading: string): string[][] {
  const lines = report.split('\n');
  const start = lines.findIndex((line) => line.startsWith(heading));
  expect(start, `no '${heading}' in:\n${report}`).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('|')) rows.push(line.slice(2, -2).split(' | '));
    else if (rows.length) break;
  }
  return rows;
}

describe.runIf(isRoot)('[kernel] pidgen bench at 200 tasks, 1 run', () => {
  let dir: string;
  let run: { status: number | null; stdout: string; stderr: string };
  let results: BenchResults;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pidgen-bench-smoke-'));
    const options = { tasks: '200', runs: 1, forks: 200, json: join(dir, 'bench.json'), svg: join(dir, 'bench.svg') };
    const result = spawnSync(process.execPath, benchArgs(options), { encoding: 'utf8', timeout: slow(180_000) });
    run = { status: result.status, stdout: result.stdout, stderr: result.stderr };
    if (run.status === 0) results = JSON.parse(readFileSync(join(dir, 'bench.json'), 'utf8')) as BenchResults;
  }, slow(200_000));

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('[kernel] exits 0 and shows its progress on stderr', () => {
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/pidgen bench: 200 tasks: creating 50 processes × 4 threads/);
    expect(run.stderr).toMatch(/pidgen bench: 200 tasks, run 1\/1:/);
  });

  it('[kernel] prints a scan table with the documented columns: pidgen procfs, ps and the reference walker at least', () => {
    const rows = tableAfter(run.stdout, '### 200 tasks');
    expect(rows[0]).toEqual([...SCAN_COLUMNS]);
    const tools = rows.slice(2).map((r) => r[0]);
    expect(tools).toContain('pidgen procfs');
    expect(tools).toContain('ps -eLo pid,tid,ppid,stat,comm,args');
    expect(tools).toContain('reference walker (C)');
    // psutil is measured where python3 has it, and named as skipped where not.
    expect(tools.includes('psutil') || /Skipped psutil/.test(run.stdout)).toBe(true);
    for (const row of rows.slice(2)) {
      expect(row).toHaveLength(SCAN_COLUMNS.length);
      expect(row[2]).toMatch(/^[\d,.]+$/);
    }
  });

  it('[kernel] prints the fork-path table, where a snapshot\'s time goes, and judges all eight targets', () => {
    const fork = tableAfter(run.stdout, '### Guard overhead');
    expect(fork[0]).toEqual([...FORK_COLUMNS]);
    if (gap) {
      expect(fork.slice(2).map((r) => r[0])).toEqual(['none']);
      expect(run.stdout).toContain(`the idle and logging rows are missing because ${gap}.`);
      expect(run.stderr).toContain(`fork path: only "no guard" was measured: ${gap}`);
    } else {
      expect(fork.slice(2).map((r) => r[0]?.split(' ')[0])).toEqual(['none', 'attached', 'attached,']);
    }
    const targets = tableAfter(run.stdout, '### Targets');
    expect(targets[0]).toEqual([...TARGET_COLUMNS]);
    expect(targets.slice(2)).toHaveLength(8);
    // The breakdown: the library call's phases, and the CLI step by step.
    expect(run.stdout).toContain("#### Where a snapshot's time goes (200 tasks)");
    expect(tableAfter(run.stdout, 'pidgen procfs, one warm snapshot() call').slice(2).map((r) => r[0]?.split(':')[0])).toContain('parse');
    for (const row of targets.slice(2)) expect(['**pass**', '**MISS**', 'not measured']).toContain(row[2]);
  });

  it('[kernel] leaves nothing in the kernel and no pin on the host: the pinned row\'s pin lived in the bench\'s own bpffs', async () => {
    expect(await expectNothingLeft()).toEqual({ progs: [], links: [], maps: [] });
    expect(existsSync('/sys/fs/bpf/pidgen')).toBe(false);
  });

  it('[kernel] writes JSON with the machine, the settings, every sample and the targets', () => {
    expect(results.schema).toBe('pidgen.bench/1');
    expect(results.machine.kernel).toMatch(/^\d+\.\d+/);
    expect(results.machine.cpuModel).not.toBe('');
    expect(results.machine.cores).toBeGreaterThan(0);
    expect(results.machine.memoryBytes).toBeGreaterThan(0);
    expect(results.settings).toEqual({ tasks: [200], threadsPerProcess: 4, runs: 1, forks: 200 });
    const [scan] = results.scans;
    expect(scan).toMatchObject({ tasks: 200, processes: 50, threadsPerProcess: 4 });
    expect(scan!.tasksInNamespace).toBeGreaterThanOrEqual(200);
    for (const tool of scan!.tools) {
      expect(TOOL_IDS).toContain(tool.id);
      expect(tool.wallNs.samples).toHaveLength(1);
      expect(tool.wallNs.median).toBeGreaterThan(0);
      expect(tool.peakRssBytes).toBeGreaterThan(0);
    }
    const procfs = scan!.tools.find((t) => t.id === 'pidgen-procfs-library');
    // pidgen saw the whole population (and the bench's own few tasks).
    expect(procfs?.tasksSeen).toBeGreaterThanOrEqual(200);
    if (gap) {
      // No guard to compare against: the no-guard figure is in the notes, and
      // the overhead target says why it was not measured.
      expect(results.forkPath).toBeNull();
      expect(results.forkPathNoGuard).toMatchObject({ forksPerRun: 200, runs: 1, guardMissing: gap });
      const forkNote = results.notes.find((note) => note.startsWith('fork path: only "no guard" was measured'));
      expect(forkNote).toMatch(/^fork path: only "no guard" was measured \([\d.,]+ µs per fork\+exit\+wait, median\): the idle and logging rows are missing because /);
      expect(forkNote!.endsWith(gap)).toBe(true);
      expect(results.targets.find((t) => t.id === 'guard-fork-overhead')).toMatchObject({ status: 'not measured', measured: `no BPF guard loads here: ${gap}` });
      expect(results.notes).toContain(`no BPF guard loads here (${gap}): the pidgen rows take their snapshots with the cursor guard`);
    } else {
      expect(results.forkPath).toMatchObject({ forksPerRun: 200, runs: 1 });
      expect(results.forkPath!.attach).toMatch(/task_newtask|alloc_pid/);
    }
    expect(results.targets.map((t) => t.id)).toEqual([
      'bpf-iter-vs-ps',
      'bpf-iter-vs-ps-20k',
      'kernel-pass',
      'cli-pinned-vs-ps',
      'cli-vs-ps',
      'procfs-vs-ref-walker',
      'guard-fork-overhead',
      'peak-rss',
    ]);
    // With the task iterator here: the kernel pass alone, the CLI's steps,
    // and the CLI with a pin, which the bench's own bpffs held and dropped.
    const bpfIter = scan!.tools.find((t) => t.id === 'pidgen-bpf-iter-library');
    if (bpfIter) {
      expect(bpfIter.kernelPass?.withArgvNs).toBeGreaterThan(0);
      expect(scan!.cliSteps?.nodeStartNs).toBeGreaterThan(0);
      if (gap) {
        // Nothing to pin without the BPF guard: skipped, with the reason.
        expect(scan!.skipped).toContainEqual(expect.objectContaining({ id: 'pidgen-bpf-iter-cli-pinned', reason: `\`pidgen pin\` needs the BPF guard: ${gap}` }));
      } else {
        expect(scan!.tools.map((t) => t.id)).toContain('pidgen-bpf-iter-cli-pinned');
      }
    }
    // Every pidgen row was measured: none failed for want of a guard.
    expect(scan!.skipped.filter((t) => t.reason.startsWith('failed:'))).toEqual([]);
  });

  it.runIf(existsSync('/usr/bin/python3'))('[kernel] writes an SVG that parses as XML, with one series per measured tool', () => {
    const script =
      'import sys, xml.etree.ElementTree as ET\n' +
      'root = ET.parse(sys.argv[1]).getroot()\n' +
      'ns = "{http://www.w3.org/2000/svg}"\n' +
      'print(",".join(g.get("data-tool") for g in root.iter(ns + "g") if g.get("class") == "series"))\n';
    const parsed = spawnSync('/usr/bin/python3', ['-c', script, join(dir, 'bench.svg')], { encoding: 'utf8' });
    expect(parsed.stderr).toBe('');
    expect(parsed.stdout.trim().split(',')).toEqual(results.scans[0]!.tools.map((t) => t.id));
  });

  it('[kernel] leaves no population task and no scratch directory behind', async () => {
    await expectNoPopulationLeft();
    expect(readdirSync(tmpdir()).filter((name) => name.startsWith('pidgen-bench-') && !name.startsWith('pidgen-bench-smoke-'))).toEqual([]);
  });
});

describe.runIf(isRoot)('[kernel] pidgen bench interrupted', () => {
  it('[kernel] Ctrl-C (SIGINT) while the population exists ends it, removes the scratch directory and exits 130', async () => {
    const child = spawn(process.execPath, benchArgs({ tasks: '2000', runs: 3, forks: 0 }), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const scratch = () => /compiling the bench's C helpers into (\S+)/.exec(stderr)?.[1];
    const deadline = Date.now() + slow(60_000);
    while (!/tasks ready/.test(stderr) && child.exitCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(stderr).toMatch(/2,000 tasks ready/);
    expect(populationTasks().length).toBeGreaterThanOrEqual(500);
    child.kill('SIGINT');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(130);
    await expectNoPopulationLeft();
    expect(scratch()).toBeDefined();
    expect(existsSync(scratch()!)).toBe(false);
  }, slow(120_000));
});
