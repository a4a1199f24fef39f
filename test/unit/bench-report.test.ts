// What `pidgen bench` shows a user: the Markdown report, the judged targets
// and the SVG chart, from hand-built results (no kernel, no timing).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BENCH_SCHEMA,
  evaluateTargets,
  type BenchResults,
  type ForkPathResult,
  type ScanResult,
  type ToolId,
  type ToolResult,
} from '../../src/bench/results.js';
import { summarize } from '../../src/bench/stats.js';
import { chartSeries, escapeXml, logTicks, renderChart } from '../../src/bench/svg.js';
import { FORK_COLUMNS, formatNumber, markdownTable, renderReport, SCAN_COLUMNS, TARGET_COLUMNS } from '../../src/bench/table.js';

const LABELS: Record<ToolId, [string, string, ToolResult['measures']]> = {
  'pidgen-procfs-library': ['pidgen procfs', 'snapshot() call, in process', 'in-process'],
  'pidgen-procfs-cli': ['pidgen procfs', '`pidgen snapshot` process', 'whole-process'],
  'pidgen-bpf-iter-library': ['pidgen bpf-iter', 'snapshot() call, iterator held, in process', 'in-process'],
  'pidgen-bpf-iter-cli': ['pidgen bpf-iter', '`pidgen snapshot` process', 'whole-process'],
  'pidgen-bpf-iter-cli-pinned': ['pidgen bpf-iter', '`pidgen snapshot` process, after `pidgen pin`', 'whole-process'],
  ps: ['ps -eLo pid,tid,ppid,stat,comm,args', 'process', 'whole-process'],
  psutil: ['psutil', 'process_iter() loop, in process', 'in-process'],
  'ref-walker': ['reference walker (C)', 'walk, in process', 'in-process'],
  'node-start': ['node -e 0', 'process: Node starting and exiting, nothing else', 'whole-process'],
};

function tool(id: ToolId, ms: number[], tasks: number, rssMb = 50): ToolResult {
  const [label, what, measures] = LABELS[id];
  const wallNs = summarize(ms.map((m) => m * 1e6));
  const row: ToolResult = { id, label, what, measures, wallNs, usPerTask: wallNs.median / 1e3 / tasks, peakRssBytes: rssMb * 1e6 };
  if (id === 'pidgen-bpf-iter-library') {
    // As measured here at 5,000 tasks: 66% of the difference closed.
    row.kernelPass = { withArgvNs: 9.0e6, withoutArgvNs: 5.5e6, plainNs: 9.2e6, minimalNs: 3.6e6 };
    row.phases = { 'kernel pass': 9.1e6, parse: 4.2e6, guard: 0.6e6, index: 1.9e6, total: 17.5e6 };
  }
  return row;
}

/** A scan where time grows linearly with tasks; `perTaskUs` per tool. */
function scan(tasks: number, perTaskUs: Partial<Record<ToolId, number>>, options: { rssMb?: number; skipBpfIter?: boolean } = {}): ScanResult {
  const tools = (Object.entries(perTaskUs) as [ToolId, number][]).map(([id, us]) => {
    const ms = (us * tasks) / 1e3;
    return tool(id, [ms * 0.98, ms, ms * 1.05], tasks, id.startsWith('pidgen-') ? options.rssMb : 10);
  });
  return {
    tasks,
    processes: tasks / 4,
    threadsPerProcess: 4,
    tasksInNamespace: tasks + 12,
    tools,
    skipped: options.skipBpfIter
      ? [{ id: 'pidgen-bpf-iter-library', label: 'pidgen bpf-iter (snapshot() call, in process)', reason: "source 'bpf-iter' is not available" }]
      : [],
    populationSeconds: 0.5,
    cliSteps: {
      nodeStartNs: 117e6,
      importNs: 54e6,
      snapshotNs: 122e6,
      phases: { open: 81e6, 'kernel pass': 12e6, parse: 14e6, guard: 3e6, index: 4e6 },
      outputNs: 17e6,
      runs: 3,
    },
  };
}

const PER_TASK: Partial<Record<ToolId, number>> = {
  'pidgen-procfs-library': 33,
  'pidgen-procfs-cli': 90,
  'pidgen-bpf-iter-library': 2,
  'pidgen-bpf-iter-cli': 70,
  'pidgen-bpf-iter-cli-pinned': 20,
  ps: 80,
  psutil: 100,
  'ref-walker': 30,
};

const FORK: ForkPathResult = {
  forksPerRun: 4000,
  runs: 5,
  attach: 'tp_btf/task_newtask',
  noGuard: summarize([100_000, 101_000, 99_000]),
  idle: summarize([100_500, 101_400, 99_600]),
  logging: summarize([101_000, 102_000, 100_000]),
  idleRatio: 1.005,
  loggingRatio: 1.01,
  logDrops: 0,
  pinnedToOneCpu: true,
  programNsPerRun: { idle: 800, logging: 1300 },
};

function results(scans: ScanResult[], forkPath: ForkPathResult | null = FORK): BenchResults {
  return {
    schema: BENCH_SCHEMA,
    pidgenVersion: '0.1.0',
    startedAt: '2026-11-26T10:00:00.000Z',
    finishedAt: '2026-11-26T10:05:00.000Z',
    machine: { hostname: 'vm', kernel: '6.18.44', cpuModel: 'AMD EPYC', cores: 2, memoryBytes: 25e9, node: 'v20.20.2' },
    loadAverage: { atStart: [0.1, 0.2, 0.3], atEnd: [1, 1, 1] },
    settings: { tasks: scans.map((s) => s.tasks), threadsPerProcess: 4, runs: 3, forks: 4000 },
    scans,
    forkPath,
    targets: evaluateTargets(scans, forkPath),
    notes: [],
  };
}

const FULL = results([scan(1000, PER_TASK), scan(5000, PER_TASK), scan(20000, PER_TASK, { rssMb: 120 })]);

/** Rows of the Markdown table that follows `heading`, split into cells. */
function tableAfter(report: string, heading: string): string[][] {
  const lines = report.split('\n');
  const start = lines.findIndex((line) => line.startsWith(heading));
  expect(start, `no heading '${heading}'`).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('|')) rows.push(line.slice(2, -2).split(' | '));
    else if (rows.length) break;
  }
  return rows;
}

describe('the Markdown report', () => {
  const report = renderReport(FULL);

  it('has one table per task count, with the documented columns and a row per tool', () => {
    for (const tasks of ['1,000', '5,000', '20,000']) {
      const rows = tableAfter(report, `### ${tasks} tasks`);
      expect(rows[0]).toEqual([...SCAN_COLUMNS]);
      expect(rows.slice(2).map((r) => `${r[0]} / ${r[1]}`)).toEqual(
        Object.keys(PER_TASK).map((id) => `${LABELS[id as ToolId][0]} / ${LABELS[id as ToolId][1]}`),
      );
    }
  });

  it('says how much faster or slower than ps each tool is, with ps as the baseline', () => {
    const rows = tableAfter(report, '### 5,000 tasks');
    const vsPs = (label: string, what: string) => rows.find((r) => r[0] === label && r[1] === what)?.[5];
    expect(vsPs('ps -eLo pid,tid,ppid,stat,comm,args', 'process')).toBe('baseline');
    expect(vsPs('pidgen bpf-iter', 'snapshot() call, iterator held, in process')).toBe('40.0× faster');
    expect(vsPs('psutil', 'process_iter() loop, in process')).toBe('1.25× slower');
  });

  it('gives the median in ms, the range, µs per task and peak RSS in MB', () => {
    const row = tableAfter(report, '### 5,000 tasks').find((r) => r[0] === 'pidgen procfs' && r[1] === 'snapshot() call, in process')!;
    expect(row[2]).toBe('165'); // 33 µs × 5,000
    expect(row[3]).toBe('162–173');
    expect(row[6]).toBe('50.0');
  });

  it('has the fork-path table with the guard states and their ratio to no guard', () => {
    const rows = tableAfter(report, '### Guard overhead');
    expect(rows[0]).toEqual([...FORK_COLUMNS]);
    expect(rows.slice(2).map((r) => r[0])).toEqual(['none', 'attached (tp_btf/task_newtask), idle', 'attached, logging']);
    expect(rows[3]?.[3]).toBe('1.005 (+0.5%)');
    expect(report).toContain("pidgen's programs themselves (the counter on task creation and the exit logger) run 0.800 µs per fork+exit idle (+0.8% of a fork)");
  });

  it('where no BPF guard loads (before 5.12), has the fork-path table with "none" alone, says why, and does not judge the overhead', () => {
    const gap = 'the BPF guard needs Linux 5.12 or newer (BPF atomics); this is 5.10.0';
    const fork = { forksPerRun: 4000, runs: 3, pinnedToOneCpu: true, noGuard: summarize([100_000, 101_000, 99_000]), guardMissing: gap };
    const scans = [scan(5000, PER_TASK)];
    const r: BenchResults = { ...results(scans, null), forkPathNoGuard: fork, targets: evaluateTargets(scans, null, fork) };
    const text = renderReport(r);
    const rows = tableAfter(text, '### Guard overhead');
    expect(rows[0]).toEqual([...FORK_COLUMNS]);
    expect(rows.slice(2).map((row) => row.slice(0, 2))).toEqual([['none', '100']]);
    expect(text).toContain(`the idle and logging rows are missing because ${gap}.`);
    expect(text.indexOf('### Guard overhead')).toBeLessThan(text.indexOf('### Targets'));
    expect(r.targets.find((t) => t.id === 'guard-fork-overhead')).toMatchObject({ status: 'not measured', measured: `no BPF guard loads here: ${gap}` });
  });

  it('judges every target, pass or MISS, in its own table', () => {
    const rows = tableAfter(report, '### Targets');
    expect(rows[0]).toEqual([...TARGET_COLUMNS]);
    expect(rows.slice(2).map((r) => r[2])).toEqual(Array(8).fill('**pass**'));
    expect(rows.slice(2).map((r) => r[0])).toEqual([
      'pidgen bpf-iter snapshot() (guard and iterator held) at least 30× faster than `ps -eLo` at 5,000 tasks',
      'pidgen bpf-iter snapshot() (guard and iterator held) at least 30× faster than `ps -eLo` at 20,000 tasks',
      "the kernel pass: at least 50% of its difference from a minimal iterator closed (pidgen's program without argv against the plain BPF_CORE_READ program it started from) at 5,000 tasks",
      '`pidgen snapshot` (bpf-iter) as a process, with a pin in place, at least 3× faster than `ps -eLo` at 5,000 tasks',
      '`pidgen snapshot` (bpf-iter) as a process, nothing pinned, faster than `ps -eLo` at 5,000 tasks',
      "pidgen procfs snapshot() within 1.2× of the reference C walker at 5,000 tasks",
      'BPF guard overhead on fork+exit+wait at most 1% (guard attached, idle)',
      '`pidgen snapshot` peak RSS under 150 MB at 20,000 tasks',
    ]);
  });

  it("shows where a snapshot's time goes: the library call's phases, the kernel pass alone, and the CLI's steps", () => {
    const report = renderReport(results([scan(5000, PER_TASK)]));
    expect(report).toContain("#### Where a snapshot's time goes (5,000 tasks)");
    const library = tableAfter(report, 'pidgen bpf-iter, one warm snapshot() call');
    expect(library.slice(2).map((r) => r[0]!.split(':')[0])).toEqual(['kernel pass', 'parse', 'guard', 'index', 'the rest']);
    expect(library[2]?.slice(1)).toEqual(['9.10', '52%']);
    const kernel = tableAfter(report, 'The kernel pass alone');
    expect(kernel.slice(2).map((r) => r[1])).toEqual(['9.00', '5.50', '9.20', '3.60']);
    const cli = tableAfter(report, '`pidgen snapshot --source bpf-iter --format json`, step by step');
    expect(cli.slice(2).map((r) => r[0]!.split(':')[0])).toEqual([
      'node start (to bootstrap complete)',
      "loading pidgen's modules",
      'snapshot(), open',
      'snapshot(), kernel pass',
      'snapshot(), parse',
      'snapshot(), guard',
      'snapshot(), index',
      'snapshot(), the rest',
      'writing the JSON',
      'process creation and exit, and what Node does between the steps',
    ]);
    // 70 µs × 5,000 tasks: the whole-process median the shares are of.
    expect(report).toContain('shares of the whole-process median, 350 ms');
  });

  it('names a skipped tool and why', () => {
    const text = renderReport(results([scan(5000, { ps: 80 }, { skipBpfIter: true })]));
    expect(text).toContain("Skipped pidgen bpf-iter (snapshot() call, in process): source 'bpf-iter' is not available");
  });
});

describe('markdownTable', () => {
  it('escapes a | inside a cell so the columns stay put', () => {
    expect(markdownTable(['a', 'b'], [['x|y', 'z']])).toBe('| a | b |\n| --- | --- |\n| x\\|y | z |\n');
  });

  it('right-aligns numeric columns', () => {
    expect(markdownTable(['name', 'ms'], [], 1)).toContain('| --- | ---: |');
  });
});

describe('formatNumber', () => {
  it('keeps about three significant figures and groups thousands', () => {
    expect(formatNumber(1234.5)).toBe('1,235');
    expect(formatNumber(45.67)).toBe('45.7');
    expect(formatNumber(4.567)).toBe('4.57');
    expect(formatNumber(0.04567)).toBe('0.046');
  });
});

describe('evaluateTargets', () => {
  const byId = (r: BenchResults) => Object.fromEntries(r.targets.map((t) => [t.id, t]));

  it('misses a target and says by how much', () => {
    const slow = results(
      [scan(5000, { ...PER_TASK, 'pidgen-bpf-iter-library': 8, 'pidgen-procfs-library': 60 }), scan(20000, PER_TASK, { rssMb: 180 })],
      { ...FORK, idleRatio: 1.03, programNsPerRun: { idle: 3000, logging: 3500 } },
    );
    const t = byId(slow);
    expect(t['bpf-iter-vs-ps']).toMatchObject({ status: 'miss', measured: '10.0× faster' });
    expect(t['procfs-vs-ref-walker']).toMatchObject({ status: 'miss', measured: "2.00× the walker's time" });
    expect(t['guard-fork-overhead']?.status).toBe('miss');
    // The kernel's statistics of the program decide; paired timing is shown too.
    expect(t['guard-fork-overhead']?.measured).toMatch(/^the programs themselves \(kernel BPF statistics\): \+3\.0% idle, .*; paired timing: \+3\.0% idle/);
    expect(t['peak-rss']).toMatchObject({ status: 'miss' });
    expect(t['peak-rss']?.measured).toBe('180.0 MB (pidgen procfs); a library process after its snapshot() calls: 180.0 MB (pidgen procfs)');
  });

  it('judges the CLI with a pin and without, and the kernel pass against the minimal iterator', () => {
    const slow = byId(
      results([scan(5000, { ...PER_TASK, 'pidgen-bpf-iter-cli': 100, 'pidgen-bpf-iter-cli-pinned': 40 }), scan(20000, { ...PER_TASK, 'pidgen-bpf-iter-library': 4 })]),
    );
    expect(slow['cli-vs-ps']).toMatchObject({ status: 'miss', measured: '1.25× slower' });
    expect(slow['cli-pinned-vs-ps']).toMatchObject({ status: 'miss', measured: '2.00× faster' });
    expect(slow['bpf-iter-vs-ps-20k']).toMatchObject({ status: 'miss', measured: '20.0× faster' });
    expect(byId(FULL)['kernel-pass']?.measured).toBe('66% closed: 5.5 ms without argv, minimal 3.6 ms, plain 9.2 ms; argv adds 3.5 ms');
    // With Node's own start measured, a whole-process miss says what is left for pidgen.
    const floored = byId(results([scan(5000, { ...PER_TASK, 'pidgen-bpf-iter-cli-pinned': 40, 'node-start': 20 })]));
    // ps 400 ms, so 3× is 133 ms; node -e 0 takes 100 ms.
    expect(floored['cli-pinned-vs-ps']?.measured).toBe('2.00× faster; an empty `node -e 0` takes 100 ms here, so the target (133 ms) leaves 33 ms for pidgen');
    const starved = byId(results([scan(5000, { ...PER_TASK, 'pidgen-bpf-iter-cli-pinned': 40, 'node-start': 30 })]));
    expect(starved['cli-pinned-vs-ps']?.measured).toContain('so the target (133 ms) is below what any Node program takes');
    const { 'pidgen-bpf-iter-cli-pinned': _none, ...unpinned } = PER_TASK;
    const skipped = scan(5000, unpinned);
    skipped.skipped.push({ id: 'pidgen-bpf-iter-cli-pinned', label: 'pidgen bpf-iter', reason: 'pidgen pin exited with 1: no bpffs' });
    expect(byId(results([skipped]))['cli-pinned-vs-ps']).toMatchObject({ status: 'not measured', measured: 'pidgen bpf-iter skipped: pidgen pin exited with 1: no bpffs' });
  });

  it('judges the fork overhead by the program\'s own run time when the kernel reports it, not by noisy paired timing', () => {
    const noisy = byId(results([scan(5000, PER_TASK)], { ...FORK, idleRatio: 1.09 }));
    expect(noisy['guard-fork-overhead']?.status).toBe('pass');
    expect(noisy['guard-fork-overhead']?.measured).toContain('paired timing: +9.0% idle');
    const { programNsPerRun: _none, ...withoutStats } = FORK;
    const timed = byId(results([scan(5000, PER_TASK)], { ...withoutStats, idleRatio: 1.09 }));
    expect(timed['guard-fork-overhead']).toMatchObject({ status: 'miss' });
    expect(timed['guard-fork-overhead']?.measured).toMatch(/^\+9\.0% idle, .* \(paired timing\)$/);
  });

  it('says "not measured", with the reason, where a tool was skipped or a size not run', () => {
    const { 'pidgen-bpf-iter-library': _skipped, ...withoutBpfIter } = PER_TASK;
    const t = byId(results([scan(5000, withoutBpfIter, { skipBpfIter: true })], null));
    expect(t['bpf-iter-vs-ps']?.status).toBe('not measured');
    expect(t['bpf-iter-vs-ps']?.measured).toContain("source 'bpf-iter' is not available");
    expect(t['guard-fork-overhead']).toMatchObject({ status: 'not measured' });
    expect(t['peak-rss']).toMatchObject({ status: 'not measured', measured: '20,000 tasks not run' });
  });

  it('judges the 5,000-task targets at the nearest size when 5,000 was not run, and says so', () => {
    const t = byId(results([scan(1000, PER_TASK)]));
    expect(t['procfs-vs-ref-walker']?.measured).toContain('(at 1,000 tasks; the target is set at 5,000)');
  });
});

/**
 * A strict check that the SVG is well-formed XML: every tag closed in
 * order, attributes quoted, entities known. (Node has no XML parser; the
 * python3 test below uses a real one where python3 exists.)
 */
function expectWellFormed(xml: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt === -1 ? xml.length : lt);
    for (const entity of text.match(/&[^;\s]*;?/g) ?? []) expect(['&amp;', '&lt;', '&gt;', '&quot;', '&apos;']).toContain(entity);
    if (lt === -1) break;
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    expect(m, `malformed tag at ${lt}: ${xml.slice(lt, lt + 60)}`).not.toBeNull();
    const [, closing, name, , selfClosing] = m!;
    if (closing) expect(stack.pop()).toBe(name);
    else if (!selfClosing) stack.push(name!);
    i = tag.lastIndex;
  }
  expect(stack).toEqual([]);
}

describe('the SVG chart', () => {
  const svg = renderChart(FULL);

  it('is well-formed XML with a title, both axis titles and a legend', () => {
    expectWellFormed(svg);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('pidgen bench: time to list every process and thread');
    expect(svg).toContain('tasks (processes × threads) in the PID namespace, log scale');
    expect(svg).toContain('time per scan, ms (log scale)');
    expect(svg).toContain('AMD EPYC · 2 cores');
  });

  it('draws one series per tool, with a point per task count, and a legend entry for each', () => {
    const series = [...svg.matchAll(/<g class="series" data-tool="([^"]+)"[^>]*>([\s\S]*?)<\/g>/g)];
    expect(series.map((m) => m[1])).toEqual(Object.keys(PER_TASK));
    for (const m of series) expect(m[2]!.match(/<circle /g)).toHaveLength(3);
    expect([...svg.matchAll(/<g class="legend-entry" data-tool="([^"]+)"/g)].map((m) => m[1])).toEqual(Object.keys(PER_TASK));
    // Whole-process timings are dashed, in-process ones solid.
    expect(svg).toMatch(/data-tool="ps"[^>]*>\n<path [^>]*stroke-dasharray/);
    expect(svg).not.toMatch(/data-tool="ref-walker"[^>]*>\n<path [^>]*stroke-dasharray/);
  });

  it('puts the task counts on the x axis and 1-2-5 ticks on the log y axis', () => {
    const xAxis = /<g class="x-axis"[^>]*>([\s\S]*?)<\/g>/.exec(svg)![1]!;
    expect([...xAxis.matchAll(/>([^<>]+)<\/text>/g)].map((m) => m[1])).toEqual(['1,000', '5,000', '20,000']);
    expect(logTicks(0.5, 200)).toEqual([0.5, 1, 2, 5, 10, 20, 50, 100, 200]);
    expect(logTicks(1, 1000)).toEqual([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]);
  });

  it('puts faster tools lower: points go down the page as time goes down', () => {
    const cy = (id: string) => Number(new RegExp(`data-tool="${id}"[\\s\\S]*?<circle cx="[^"]+" cy="([^"]+)"`).exec(svg)![1]);
    expect(cy('pidgen-bpf-iter-library')).toBeGreaterThan(cy('ps'));
  });

  it('escapes labels, and still draws a chart from a single task count', () => {
    const one = results([scan(200, { ps: 80 })], null);
    one.scans[0]!.tools[0]!.label = 'ps <&> "quoted"';
    const text = renderChart(one);
    expectWellFormed(text);
    expect(text).toContain('ps &lt;&amp;&gt; &quot;quoted&quot;');
    expect(chartSeries(one)).toHaveLength(1);
    expect(escapeXml(`a'b`)).toBe('a&apos;b');
  });

  it.runIf(existsSync('/usr/bin/python3'))('parses with a real XML parser (python3 xml.etree)', () => {
    const script =
      'import sys, xml.etree.ElementTree as ET\n' +
      'root = ET.fromstring(sys.stdin.read())\n' +
      'ns = "{http://www.w3.org/2000/svg}"\n' +
      'print(",".join(g.get("data-tool") for g in root.iter(ns + "g") if g.get("class") == "series"))\n';
    const result = spawnSync('/usr/bin/python3', ['-c', script], { input: svg, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.stdout.trim().split(',')).toEqual(Object.keys(PER_TASK));
  });
});
