/**
 * `pidgen snapshot --format table`: a snapshot for a person at a terminal.
 *
 * Process names and argv are chosen by whoever started the process, so they
 * may hold newlines, escape sequences or bidi overrides. Every such character
 * is shown escaped (`\n`, `\x1b`, `\u202e`) and backslashes are doubled, so a
 * hostile name can neither break the one-row-per-process layout nor drive the
 * terminal, and the escaped text still reads back unambiguously.
 */

import type { ProcessEntry, Snapshot } from '../model/snapshot.js';

/** Lines are kept to about this many characters by truncating CMDLINE. */
const LINE_WIDTH = 160;
/** CMDLINE keeps at least this many characters, even after a wide COMM. */
const MIN_CMDLINE_WIDTH = 20;
/** COMM is 15 bytes for processes, up to 63 for kernel threads; escapes can widen it. */
const MAX_COMM_WIDTH = 32;
const ELLIPSIS = '…';
const COLUMN_GAP = '  ';

type Align = 'left' | 'right';

interface Column {
  title: string;
  align: Align;
  cell: (entry: ProcessEntry) => string;
}

const COLUMNS: readonly Column[] = [
  { title: 'PID', align: 'right', cell: (p) => String(p.pid) },
  { title: 'PPID', align: 'right', cell: (p) => String(p.ppid) },
  { title: 'UID', align: 'right', cell: (p) => (p.uid === null ? '-' : String(p.uid)) },
  { title: 'STATE', align: 'left', cell: (p) => escapeForTerminal(p.state) },
  // Empty means threads were not collected (--no-threads) or unreadable; a
  // live process always has at least its leader.
  { title: 'THR', align: 'right', cell: (p) => (p.threads.length === 0 ? '-' : String(p.threads.length)) },
  // Exact times get a trailing space so the decimal points line up with `~` ones.
  { title: 'START', align: 'right', cell: (p) => formatScaled(p.startNs, 1_000_000_000n) + (p.startExact ? ' ' : '~') },
  { title: 'COMM', align: 'left', cell: (p) => clip(escapeForTerminal(p.comm), MAX_COMM_WIDTH) },
];

/**
 * Renders the snapshot as a header (namespace, source, guard, coherence) and
 * one row per process, sorted by PID. START is seconds since boot
 * (CLOCK_BOOTTIME); a `~` marks a start time converted from /proc's 10 ms
 * clock ticks rather than read exactly. Kernel threads and zombies, which have
 * no argv, show `[comm]` in CMDLINE as ps does. Ends with a newline.
 */
export function toTable(snapshot: Snapshot): string {
  const processes = [...snapshot.processes].sort((a, b) => a.pid - b.pid);
  const cells = processes.map((entry) => COLUMNS.map((column) => column.cell(entry)));
  const widths = COLUMNS.map((column, i) => Math.max(width(column.title), ...cells.map((row) => width(row[i] ?? ''))));
  const fixedWidth = widths.reduce((sum, w) => sum + w + COLUMN_GAP.length, 0);
  const cmdlineWidth = Math.max(MIN_CMDLINE_WIDTH, LINE_WIDTH - fixedWidth);

  const line = (fixed: readonly string[], cmdline: string): string =>
    [...fixed.map((cell, i) => pad(cell, widths[i] ?? 0, COLUMNS[i]?.align ?? 'left')), cmdline].join(COLUMN_GAP).trimEnd();

  const rows = processes.map((entry, r) => line(cells[r] ?? [], clip(cmdlineText(entry), cmdlineWidth)));
  return [...headerLines(snapshot), '', line(COLUMNS.map((c) => c.title), 'CMDLINE'), ...rows].join('\n') + '\n';
}

function headerLines(snapshot: Snapshot): string[] {
  const { guard } = snapshot;
  const windowNs = snapshot.window.endNs - snapshot.window.startNs;
  const host = `${escapeForTerminal(snapshot.host.hostname)} (${escapeForTerminal(snapshot.host.kernel)})`;
  let guardText = `guard ${guard.kind}`;
  if (guard.attach !== undefined) guardText += ` via ${escapeForTerminal(guard.attach)}`;
  if (guard.pinned) guardText += ' (pinned)';
  if (guard.generationBefore !== undefined || guard.generationAfter !== undefined) {
    guardText += `, generation ${guard.generationBefore ?? '?'} -> ${guard.generationAfter ?? '?'}`;
  }
  const coherent = snapshot.coherent
    ? 'coherent: yes'
    : `coherent: NO${snapshot.reason !== undefined ? ` (${escapeForTerminal(snapshot.reason)})` : ''}`;
  return [
    `pid namespace ${snapshot.pidNamespace.inum} on ${host}, source ${snapshot.source}, window ${formatScaled(windowNs, 1_000_000n)} ms`,
    guardText,
    `${coherent}, attempts ${snapshot.attempts}, reused ${snapshot.reused.length}, exited ${snapshot.exited.length}, tasks ${snapshot.stats.tasks}, processes ${snapshot.processes.length}`,
    ...listLine(
      'hand-overs (pid at s since boot, -> holder)',
      snapshot.reused.map((r) => `${r.pid} at ${formatScaled(r.atNs, 1_000_000_000n)}${r.holder !== undefined ? ` -> ${r.holder}` : ''}`),
    ),
    ...listLine(
      'exited in the window (pid/tid name, start-exit s since boot)',
      snapshot.exited.map(
        (t) => `${t.pid}/${t.tid} ${escapeForTerminal(t.comm)} ${formatScaled(t.startNs, 1_000_000_000n)}-${formatScaled(t.exitNs, 1_000_000_000n)}`,
      ),
    ),
  ];
}

/** One header line listing up to LIST_MAX items, or nothing for none. */
function listLine(title: string, items: string[]): string[] {
  if (items.length === 0) return [];
  const shown = items.slice(0, LIST_MAX).join(', ');
  return [`${title}: ${shown}${items.length > LIST_MAX ? `, and ${items.length - LIST_MAX} more (see --format json)` : ''}`];
}

const LIST_MAX = 12;

function cmdlineText(entry: ProcessEntry): string {
  if (entry.cmdline.length === 0) return `[${escapeForTerminal(entry.comm)}]`;
  return entry.cmdline.map(escapeForTerminal).join(' ');
}

/** `value / scale` with three decimals, truncated: 1234567890 ns at scale 1e9 is "1.234". */
function formatScaled(value: bigint, scale: bigint): string {
  const sign = value < 0n ? '-' : '';
  const magnitude = value < 0n ? -value : value;
  const whole = magnitude / scale;
  const thousandths = ((magnitude % scale) * 1000n) / scale;
  return `${sign}${whole}.${thousandths.toString().padStart(3, '0')}`;
}

/**
 * Escapes every character that could move the cursor, end the line, recolour
 * or reorder the terminal: C0 controls and DEL (`\n`, `\t`, `\r`, else
 * `\xHH`), C1 controls (U+0080–U+009F; U+009B is a one-character CSI), line
 * and paragraph separators, bidi marks, overrides and isolates (the
 * "Trojan Source" characters), and lone surrogates.
 */
export function escapeForTerminal(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (needsUnicodeEscape(cp)) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

function needsUnicodeEscape(cp: number): boolean {
  return (
    (cp >= 0x80 && cp <= 0x9f) ||
    cp === 0x061c ||
    cp === 0x200e ||
    cp === 0x200f ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2066 && cp <= 0x2069) ||
    (cp >= 0xd800 && cp <= 0xdfff)
  );
}

// Widths count code points, so a non-BMP character (an emoji in argv) is one
// column, not two UTF-16 units, and truncation never splits a surrogate pair.
// East Asian wide characters still take two terminal columns; only the
// alignment of later columns suffers, never the one-line-per-row layout.
function width(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function clip(text: string, max: number): string {
  if (width(text) <= max) return text;
  return Array.from(text).slice(0, max - 1).join('') + ELLIPSIS;
}

function pad(text: string, to: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, to - width(text)));
  return align === 'right' ? fill + text : text + fill;
}
