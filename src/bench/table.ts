/** `pidgen bench`'s report: Markdown tables, readable in a terminal and pasteable into a README. */
import { signedPercent, type BenchResults, type ForkNoGuardResult, type ForkPathResult, type Machine, type ScanResult, type TargetStatus } from './results.js';
import { LIBRARY_CALLS } from './job.js';

/** Column headers of a scan table, in order. */
export const SCAN_COLUMNS = ['tool', 'timed', 'median ms', 'range ms', 'µs/task', 'vs ps -eLo', 'peak RSS MB'] as const;
export const FORK_COLUMNS = ['guard', 'median µs/fork', 'range µs/fork', 'vs no guard'] as const;
export const TARGET_COLUMNS = ['target', 'measured', 'result'] as const;
export const BREAKDOWN_COLUMNS = ['step', 'ms', 'share'] as const;

/** The phases of src/profile.ts in the order a snapshot meets them, with what each covers. */
const PHASE_ROWS: readonly [string, string][] = [
  ['open', 'choosing and loading the guard and the source (BPF load and verify, or a pin opened)'],
  ['kernel pass', 'the task iterator read (/proc listed beside it)'],
  ['read', '/proc read (native batch reads)'],
  ['parse', 'bytes into entries'],
  ['top-ups', '/proc reads for what the pass could not give'],
  ['guard', 'window start and checkpoints (the log drained)'],
  ['index', 'the entry index and the checks on it (suspects, exits, re-reads)'],
];

const count = (n: number) => n.toLocaleString('en-US');

/** Three significant figures or so, without drowning small numbers in zeros. */
export function formatNumber(value: number): string {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[], numericFrom = Infinity): string {
  const align = headers.map((_, i) => (i >= numericFrom ? '---:' : '---'));
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |\n`;
  return line(headers) + line(align) + rows.map(line).join('');
}

export function machineLine(machine: Machine, pidgenVersion: string): string {
  return [
    machine.cpuModel,
    `${machine.cores} cores`,
    `${(machine.memoryBytes / 1e9).toFixed(1)} GB RAM`,
    `Linux ${machine.kernel}`,
    `Node ${machine.node}`,
    `pidgen ${pidgenVersion}`,
  ].join(' · ');
}

/** How much faster than ps (or slower), from the two median times. */
function versusPs(toolNs: number, psNs: number | undefined, isPs: boolean): string {
  if (isPs) return 'baseline';
  if (psNs === undefined) return '–';
  const ratio = psNs / toolNs;
  return ratio >= 1 ? `${formatNumber(ratio)}× faster` : `${formatNumber(1 / ratio)}× slower`;
}

export function scanSection(scan: ScanResult): string {
  const ps = scan.tools.find((t) => t.id === 'ps');
  const rows = scan.tools.map((t) => [
    t.label,
    t.what,
    formatNumber(t.wallNs.median / 1e6),
    `${formatNumber(t.wallNs.min / 1e6)}–${formatNumber(t.wallNs.max / 1e6)}`,
    formatNumber(t.usPerTask),
    versusPs(t.wallNs.median, ps?.wallNs.median, t.id === 'ps'),
    formatNumber(t.peakRssBytes / 1e6),
  ]);
  let text =
    `### ${count(scan.tasks)} tasks: ${count(scan.processes)} processes × ${scan.threadsPerProcess} threads ` +
    `(${count(scan.tasksInNamespace)} tasks in the namespace)\n\n`;
  text += markdownTable(SCAN_COLUMNS, rows, 2);
  for (const skipped of scan.skipped) text += `\nSkipped ${skipped.label}: ${skipped.reason}\n`;
  const notes = scan.tools.flatMap((t) => (t.notes ?? []).map((note) => `${t.label} (${t.what}): ${note}`));
  if (notes.length) text += '\n' + notes.map((note) => `- ${note}\n`).join('');
  return text;
}

/** The fork-path section where only "no guard" could be measured: its one row, and why the others are missing. */
export function forkNoGuardSection(fork: ForkNoGuardResult): string {
  const us = (ns: number) => formatNumber(ns / 1e3);
  const row = ['none', us(fork.noGuard.median), `${us(fork.noGuard.min)}–${us(fork.noGuard.max)}`, '1.000'];
  return (
    `### Guard overhead on fork+exit+wait (${count(fork.forksPerRun)} forks per run, ${fork.runs} run${fork.runs === 1 ? '' : 's'})\n\n` +
    markdownTable(FORK_COLUMNS, [row], 1) +
    `\nOnly "none" was measured${fork.pinnedToOneCpu ? ' (forkbench pinned to one CPU)' : ''}: the idle and logging rows are missing because ${fork.guardMissing}.\n`
  );
}

export function forkSection(fork: ForkPathResult): string {
  const us = (ns: number) => formatNumber(ns / 1e3);
  const rows = [
    ['none', us(fork.noGuard.median), `${us(fork.noGuard.min)}–${us(fork.noGuard.max)}`, '1.000'],
    [`attached (${fork.attach}), idle`, us(fork.idle.median), `${us(fork.idle.min)}–${us(fork.idle.max)}`, `${fork.idleRatio.toFixed(3)} (${signedPercent(fork.idleRatio - 1)})`],
    [`attached, logging`, us(fork.logging.median), `${us(fork.logging.min)}–${us(fork.logging.max)}`, `${fork.loggingRatio.toFixed(3)} (${signedPercent(fork.loggingRatio - 1)})`],
  ];
  let text = `### Guard overhead on fork+exit+wait (${count(fork.forksPerRun)} forks per run, ${fork.runs} run${fork.runs === 1 ? '' : 's'})\n\n`;
  text += markdownTable(FORK_COLUMNS, rows, 1);
  text +=
    '\nRatios are medians of per-run paired ratios (each run measures all three back to back' +
    `${fork.pinnedToOneCpu ? ', forkbench pinned to one CPU' : ''}).\n`;
  if (fork.programNsPerRun) {
    const { idle, logging } = fork.programNsPerRun;
    text +=
      `By the kernel's BPF run-time statistics, pidgen's programs themselves (the counter on task creation and the exit logger) run ${formatNumber(idle / 1e3)} µs per fork+exit idle ` +
      `(${signedPercent(idle / fork.noGuard.median)} of a fork) and ${formatNumber(logging / 1e3)} µs logging ` +
      `(${signedPercent(logging / fork.noGuard.median)}).\n`;
  }
  if (fork.logDrops > 0) text += `The allocation log dropped ${count(fork.logDrops)} records while logging (ring full).\n`;
  return text;
}

/** Rows of phases that took any time, then the rest of `totalNs`. */
function phaseRows(phases: Record<string, number>, totalNs: number, rest: string): string[][] {
  const share = (ns: number) => `${Math.round((ns / totalNs) * 100)}%`;
  const rows: string[][] = [];
  let counted = 0;
  for (const [phase, what] of PHASE_ROWS) {
    const ns = phases[phase];
    if (ns === undefined || ns <= 0) continue;
    counted += ns;
    rows.push([`${phase}: ${what}`, formatNumber(ns / 1e6), share(ns)]);
  }
  if (totalNs > counted) rows.push([rest, formatNumber((totalNs - counted) / 1e6), share(totalNs - counted)]);
  return rows;
}

/** Where a snapshot's time goes: the library rows' profiled call, the kernel pass alone, and the CLI's steps. */
export function breakdownSection(scan: ScanResult): string {
  let text = '';
  for (const row of scan.tools) {
    if (!row.phases?.total) continue;
    text += `\n${row.label}, one warm snapshot() call with the phase profile on (${formatNumber(row.phases.total / 1e6)} ms):\n\n`;
    text += markdownTable(BREAKDOWN_COLUMNS, phaseRows(row.phases, row.phases.total, 'the rest: building entries, verdict, exact starts, the result object'), 1);
    const k = row.kernelPass;
    if (k) {
      const ms = (ns: number | undefined) => (ns === undefined ? 'did not load' : formatNumber(ns / 1e6));
      text += '\nThe kernel pass alone (one iterator read, median):\n\n';
      text += markdownTable(
        ['program', 'ms'],
        [
          ['pidgen_iter_tasks, threads and argv', ms(k.withArgvNs)],
          ['pidgen_iter_tasks, threads, no argv', ms(k.withoutArgvNs)],
          ['plain iter/task program (BPF_CORE_READ throughout, as kernels before 5.18 run it)', ms(k.plainNs)],
          ['minimal yardstick (direct loads, fixed records, no namespace walk, no argv)', ms(k.minimalNs)],
        ],
        1,
      );
    }
  }
  const steps = scan.cliSteps;
  const cli = scan.tools.find((t) => t.id === 'pidgen-bpf-iter-cli');
  if (steps) {
    const whole = cli?.wallNs.median ?? steps.nodeStartNs + steps.importNs + steps.snapshotNs + steps.outputNs;
    const row = (step: string, ns: number) => [step, formatNumber(ns / 1e6), `${Math.round((ns / whole) * 100)}%`];
    const rows: string[][] = [row('node start (to bootstrap complete)', steps.nodeStartNs), row("loading pidgen's modules", steps.importNs)];
    let counted = 0;
    for (const [phase, what] of PHASE_ROWS) {
      const ns = steps.phases[phase];
      if (ns === undefined || ns <= 0) continue;
      counted += ns;
      rows.push(row(`snapshot(), ${phase}: ${what}`, ns));
    }
    if (steps.snapshotNs > counted) rows.push(row('snapshot(), the rest', steps.snapshotNs - counted));
    rows.push(row('writing the JSON', steps.outputNs));
    const total = steps.nodeStartNs + steps.importNs + steps.snapshotNs + steps.outputNs;
    if (cli && whole > total) rows.push(row('process creation and exit, and what Node does between the steps', whole - total));
    text +=
      `\n\`pidgen snapshot --source bpf-iter --format json\`, step by step (median of ${steps.runs} cold processes, ` +
      `nothing pinned; shares of the whole-process median, ${formatNumber(whole / 1e6)} ms):\n\n`;
    text += markdownTable(BREAKDOWN_COLUMNS, rows, 1);
  }
  return text ? `\n#### Where a snapshot's time goes (${count(scan.tasks)} tasks)\n${text}` : '';
}

const STATUS_TEXT: Record<TargetStatus, string> = { pass: '**pass**', miss: '**MISS**', 'not measured': 'not measured' };

function libraryCallsText(): string {
  return (Object.entries(LIBRARY_CALLS) as [string, { warmUp: number; timed: number }][])
    .map(([source, c]) => `${source} ${c.warmUp} warm-up and ${c.timed} timed`)
    .join(', ');
}

export function renderReport(results: BenchResults): string {
  let text = '## pidgen bench\n\n';
  text += `${machineLine(results.machine, results.pidgenVersion)}\n\n`;
  text +=
    `Median of ${results.settings.runs} run${results.settings.runs === 1 ? '' : 's'} after a warm-up run; ` +
    'the tools take turns within each run, in alternating order. "in process": the tool timed its own scan, ' +
    'no process start in it; "process": fork to exit of the command. Peak RSS is the whole process\'s; ' +
    `a library row's process made one cold snapshot() call, then warm-up calls, then timed calls (their median is shown), then one profiled: ${libraryCallsText()}.\n\n`;
  for (const scan of results.scans) text += scanSection(scan) + breakdownSection(scan) + '\n';
  if (results.forkPath) text += forkSection(results.forkPath) + '\n';
  else if (results.forkPathNoGuard) text += forkNoGuardSection(results.forkPathNoGuard) + '\n';
  text += '### Targets\n\n';
  text += markdownTable(
    TARGET_COLUMNS,
    results.targets.map((t) => [t.description, t.measured, STATUS_TEXT[t.status]]),
  );
  if (results.notes.length) text += '\n' + results.notes.map((note) => `- ${note}\n`).join('');
  return text;
}
