/**
 * `pidgen bench --svg`: scan time against task count, one line per tool, on
 * log-log axes, as one self-contained SVG (no scripts, no external fonts or
 * styles) that says on its face what it shows.
 */
import type { BenchResults, Measures, ToolId } from './results.js';
import { machineLine } from './table.js';

const WIDTH = 960;
const HEIGHT = 580;
const PLOT = { left: 86, right: WIDTH - 320, top: 84, bottom: HEIGHT - 76 };

/** One colour per tool; a source's library and CLI rows share it. */
const COLORS: Record<ToolId, string> = {
  'pidgen-procfs-library': '#1f5fbf',
  'pidgen-procfs-cli': '#1f5fbf',
  'pidgen-bpf-iter-library': '#1a9850',
  'pidgen-bpf-iter-cli': '#1a9850',
  'pidgen-bpf-iter-cli-pinned': '#66bd63',
  ps: '#d73027',
  psutil: '#f28e2b',
  'ref-walker': '#555555',
  'node-start': '#999999',
};

/** Whole-process timings are dashed, in-process ones solid. */
function style(series: ChartSeries): { color: string; dash?: string } {
  return { color: COLORS[series.id], ...(series.measures === 'whole-process' ? { dash: '7 4' } : {}) };
}

/** One tool's line: its median time at each task count it was measured at. */
export interface ChartSeries {
  id: ToolId;
  label: string;
  what: string;
  measures: Measures;
  points: { tasks: number; ms: number }[];
}

export function chartSeries(results: BenchResults): ChartSeries[] {
  const byId = new Map<ToolId, ChartSeries>();
  for (const scan of results.scans) {
    for (const tool of scan.tools) {
      let series = byId.get(tool.id);
      if (!series) byId.set(tool.id, (series = { id: tool.id, label: tool.label, what: tool.what, measures: tool.measures, points: [] }));
      series.points.push({ tasks: scan.tasks, ms: tool.wallNs.median / 1e6 });
    }
  }
  for (const series of byId.values()) series.points.sort((a, b) => a.tasks - b.tasks);
  return [...byId.values()];
}

/** Markdown's backticks mean nothing in a chart. */
function plain(text: string): string {
  return text.replace(/`/g, '');
}

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** A log10 scale from [lo, hi] onto [from, to]. */
function logScale(lo: number, hi: number, from: number, to: number): (v: number) => number {
  const a = Math.log10(lo);
  const b = Math.log10(hi);
  return (v) => from + ((Math.log10(v) - a) / (b - a)) * (to - from);
}

/** 1-2-5 ticks within [lo, hi]. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let exponent = Math.floor(Math.log10(lo)); exponent <= Math.ceil(Math.log10(hi)); exponent++) {
    for (const mantissa of [1, 2, 5]) {
      const value = mantissa * 10 ** exponent;
      // Round away float noise (0.30000000000000004).
      const clean = Number(value.toPrecision(6));
      if (clean >= lo * (1 - 1e-9) && clean <= hi * (1 + 1e-9)) ticks.push(clean);
    }
  }
  return ticks;
}

function tickLabel(value: number): string {
  return value >= 1 ? value.toLocaleString('en-US') : String(value);
}

const f = (n: number) => n.toFixed(1);

export function renderChart(results: BenchResults): string {
  const series = chartSeries(results);
  const allMs = series.flatMap((s) => s.points.map((p) => p.ms)).filter((ms) => ms > 0);
  const allTasks = results.scans.map((s) => s.tasks);

  // y: whole decades around the data, so every gridline is a round number.
  const yLo = allMs.length ? 10 ** Math.floor(Math.log10(Math.min(...allMs))) : 0.1;
  let yHi = allMs.length ? 10 ** Math.ceil(Math.log10(Math.max(...allMs))) : 1000;
  if (yHi <= yLo) yHi = yLo * 10;
  // x: the measured task counts, with some room either side.
  const xMin = allTasks.length ? Math.min(...allTasks) : 1000;
  const xMax = allTasks.length ? Math.max(...allTasks) : 20000;
  const pad = xMin === xMax ? 2 : 1.35;
  const xLo = xMin / pad;
  const xHi = xMax * pad;
  const x = logScale(xLo, xHi, PLOT.left, PLOT.right);
  const y = logScale(yLo, yHi, PLOT.bottom, PLOT.top);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
      `font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12" role="img" aria-labelledby="chart-title">`,
  );
  parts.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  parts.push(
    `<text id="chart-title" x="${PLOT.left}" y="30" font-size="18" font-weight="bold" fill="#111">` +
      `pidgen bench: time to list every process and thread</text>`,
  );
  const runs = results.settings.runs;
  parts.push(
    `<text x="${PLOT.left}" y="50" font-size="11.5" fill="#444">${escapeXml(machineLine(results.machine, results.pidgenVersion))}</text>`,
  );
  parts.push(
    `<text x="${PLOT.left}" y="67" font-size="11.5" fill="#444">` +
      `Median of ${runs} run${runs === 1 ? '' : 's'} per point. Log-log axes. Lower is better.</text>`,
  );

  // Grid and ticks.
  parts.push('<g class="grid" stroke="#e3e3e3" stroke-width="1">');
  for (const tick of logTicks(yLo, yHi)) {
    const major = Number.isInteger(Math.log10(tick));
    parts.push(`<line x1="${PLOT.left}" y1="${f(y(tick))}" x2="${PLOT.right}" y2="${f(y(tick))}"${major ? ' stroke="#c8c8c8"' : ''}/>`);
  }
  for (const tasks of allTasks) parts.push(`<line x1="${f(x(tasks))}" y1="${PLOT.top}" x2="${f(x(tasks))}" y2="${PLOT.bottom}"/>`);
  parts.push('</g>');
  parts.push(`<rect class="plot-frame" x="${PLOT.left}" y="${PLOT.top}" width="${PLOT.right - PLOT.left}" height="${PLOT.bottom - PLOT.top}" fill="none" stroke="#888"/>`);
  parts.push('<g class="y-axis" fill="#333" text-anchor="end">');
  for (const tick of logTicks(yLo, yHi)) parts.push(`<text x="${PLOT.left - 8}" y="${f(y(tick) + 4)}">${tickLabel(tick)}</text>`);
  parts.push('</g>');
  parts.push('<g class="x-axis" fill="#333" text-anchor="middle">');
  for (const tasks of allTasks) parts.push(`<text x="${f(x(tasks))}" y="${PLOT.bottom + 18}">${tasks.toLocaleString('en-US')}</text>`);
  parts.push('</g>');
  parts.push(
    `<text class="x-title" x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 44}" text-anchor="middle" font-size="13" fill="#111">` +
      'tasks (processes × threads) in the PID namespace, log scale</text>',
  );
  const yMid = (PLOT.top + PLOT.bottom) / 2;
  parts.push(
    `<text class="y-title" x="24" y="${yMid}" transform="rotate(-90 24 ${yMid})" text-anchor="middle" font-size="13" fill="#111">` +
      'time per scan, ms (log scale)</text>',
  );

  // Lines and points.
  for (const s of series) {
    const { color, dash } = style(s);
    const path = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(x(p.tasks))},${f(y(p.ms))}`).join(' ');
    parts.push(`<g class="series" data-tool="${s.id}" data-label="${escapeXml(s.label)}">`);
    parts.push(
      `<path d="${path}" fill="none" stroke="${color}" stroke-width="2.2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    for (const p of s.points) {
      parts.push(
        `<circle cx="${f(x(p.tasks))}" cy="${f(y(p.ms))}" r="4" fill="${color}" data-tasks="${p.tasks}" data-ms="${p.ms.toFixed(3)}">` +
          `<title>${escapeXml(`${s.label} (${plain(s.what)}): ${p.tasks.toLocaleString('en-US')} tasks, ${p.ms.toFixed(2)} ms`)}</title></circle>`,
      );
    }
    parts.push('</g>');
  }

  // Legend, beside the plot.
  const legendX = PLOT.right + 24;
  parts.push(`<g class="legend" transform="translate(${legendX} ${PLOT.top})">`);
  parts.push('<text x="0" y="4" font-weight="bold" fill="#111">tool (what was timed)</text>');
  series.forEach((s, i) => {
    const { color, dash } = style(s);
    const top = 24 + i * 38;
    parts.push(`<g class="legend-entry" data-tool="${s.id}">`);
    parts.push(
      `<line x1="0" y1="${top}" x2="30" y2="${top}" stroke="${color}" stroke-width="2.2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    parts.push(`<circle cx="15" cy="${top}" r="4" fill="${color}"/>`);
    parts.push(`<text x="40" y="${top + 4}" fill="#111">${escapeXml(s.label)}</text>`);
    parts.push(`<text x="40" y="${top + 19}" font-size="10.5" fill="#555">${escapeXml(plain(s.what))}</text>`);
    parts.push('</g>');
  });
  const noteTop = 24 + series.length * 38 + 6;
  parts.push(`<text x="0" y="${noteTop}" font-size="10.5" fill="#555">solid: timed inside the tool;</text>`);
  parts.push(`<text x="0" y="${noteTop + 14}" font-size="10.5" fill="#555">dashed: the whole process, start to exit</text>`);
  parts.push('</g>');
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
