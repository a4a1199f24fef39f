// Pure parsers for the /proc files the walker reads. Input is the bytes
// exactly as read; nothing here touches the filesystem, so every quirk can be
// tested from a captured file (test/fixtures/proc/).

import { PF_KTHREAD, USER_HZ } from '../model/layout.js';
import { isAscii } from 'node:buffer';
import { decodeComm, decodeUtf8, latin1Slice } from './decode.js';

/** Facts from `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`. */
export interface ProcStat {
  /** Field 1: the PID, or the TID when read from task/<tid>/stat. */
  pid: number;
  /** Field 2, decoded by decodeComm(). */
  comm: string;
  /** True when comm had bytes that are not UTF-8 (shown as U+FFFD). */
  commLossy: boolean;
  /** Field 3: one letter, e.g. R, S, D, Z, I. */
  state: string;
  /** Field 4: the parent's TGID; for a thread, its process's parent. */
  ppid: number;
  /** Field 9: task->flags (PF_*). */
  flags: number;
  /** Field 22: start time since boot in clock ticks (USER_HZ). */
  startTicks: bigint;
  kernelThread: boolean;
}

/** Facts from `/proc/<pid>/status`; a line that is absent stays undefined. */
export interface ProcStatus {
  name?: string;
  /** Present whenever name is: true when it had non-UTF-8 bytes. */
  nameLossy?: boolean;
  tgid?: number;
  /** The real uid: the first of the four numbers on the `Uid:` line. */
  uid?: number;
}

/** `/proc/<pid>/cmdline` split into arguments. */
export interface ProcCmdline {
  argv: string[];
  /** True when any argument had bytes that are not UTF-8. */
  lossy: boolean;
}

/** Which /proc file a ProcParseError came from. */
export type ProcFileKind = 'stat' | 'status' | 'cmdline';

/**
 * The bytes did not hold a field the parser needs, usually because the read
 * was cut short. It names the file kind and field, not the path: the caller
 * knows the path and adds it.
 */
export class ProcParseError extends Error {
  override readonly name = 'ProcParseError';
  readonly code = 'ERR_PROC_PARSE';

  constructor(
    readonly file: ProcFileKind,
    /** e.g. `starttime (field 22)`. */
    readonly field: string,
    /** Byte length of the input that lacked it. */
    readonly inputLength: number,
    why: string,
  ) {
    super(`cannot parse /proc/<pid>/${file}: ${field} ${why} (input is ${inputLength} bytes)`);
  }
}

const OPEN_PAREN = 0x28;
const CLOSE_PAREN = 0x29;
const NEWLINE = 0x0a;
const DECIMAL = /^[0-9]+$/;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// Fields of /proc/<pid>/stat that pidgen reads, numbered as in proc(5).
// Tokens after the comm start at field 3.
const STAT_FIELD = {
  state: 3,
  ppid: 4,
  flags: 9,
  starttime: 22,
} as const;
const FIRST_FIELD_AFTER_COMM = 3;

/**
 * Parses `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`.
 *
 * do_task_stat() (fs/proc/array.c) prints `pid (comm) state ppid ...` with
 * the comm raw: a task may name itself `a) b (c` or put a newline in its
 * name. Every field after the comm is a number or a state letter, so the
 * comm ends at the *last* `)` in the line.
 *
 * @throws ProcParseError when a field pidgen needs is missing or malformed.
 */
export function parseStat(bytes: Uint8Array): ProcStat {
  const buf = asBuffer(bytes);
  const fail = (field: string, why: string): never => {
    throw new ProcParseError('stat', field, buf.length, why);
  };

  const open = buf.indexOf(OPEN_PAREN);
  const close = buf.lastIndexOf(CLOSE_PAREN);
  if (open === -1) fail('comm (field 2)', 'has no opening parenthesis; the read was probably cut short');
  if (close < open) fail('comm (field 2)', 'has no closing parenthesis; the read was probably cut short');

  const pidText = buf.toString('latin1', 0, open).trim();
  if (!DECIMAL.test(pidText)) fail('pid (field 1)', `is not a number: ${JSON.stringify(pidText)}`);

  const { text: comm, lossy: commLossy } = decodeComm(buf.subarray(open + 1, close));

  // Only the fields up to starttime are needed, so scan the bytes for them
  // instead of splitting all ~50 (this runs once per task: the hot path).
  // The kernel ends the line with "\n". Without it the read was cut short,
  // and the last token may be a prefix of a longer number ("44" of "44537"),
  // so only tokens followed by whitespace are trusted.
  const tokens = tokensAfter(buf, close + 1, STAT_FIELD.starttime - FIRST_FIELD_AFTER_COMM + 1);

  const label = (name: keyof typeof STAT_FIELD): string => `${name} (field ${STAT_FIELD[name]})`;
  const field = (name: keyof typeof STAT_FIELD): string =>
    tokens[STAT_FIELD[name] - FIRST_FIELD_AFTER_COMM] ??
    fail(label(name), 'is missing; the read was probably cut short');
  const decimal = (name: keyof typeof STAT_FIELD): string => {
    const token = field(name);
    if (!DECIMAL.test(token)) fail(label(name), `is not a number: ${JSON.stringify(token)}`);
    return token;
  };

  const state = field('state');
  if (state.length !== 1) fail(label('state'), `is not one letter: ${JSON.stringify(state)}`);
  const ppid = Number(decimal('ppid'));
  // flags is an unsigned int; Number keeps all 32 bits exactly.
  const flags = Number(decimal('flags'));
  // starttime is an unsigned long long of ticks; BigInt, never rounded.
  const startTicks = BigInt(decimal('starttime'));

  return {
    pid: Number(pidText),
    comm,
    commLossy,
    state,
    ppid,
    flags,
    startTicks,
    // PF_KTHREAD is bit 21, inside int32, so the bitwise test is exact.
    kernelThread: (flags & PF_KTHREAD) !== 0,
  };
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x09 || byte === 0x0d || byte === 0x0b || byte === 0x0c;
}

/**
 * The first `count` whitespace-separated tokens of buf from `start`, each
 * only if whitespace follows it (a token that runs to the end of the input
 * may have been cut, and is not returned).
 */
function tokensAfter(buf: Buffer, start: number, count: number): string[] {
  const tokens: string[] = [];
  let i = start;
  while (tokens.length < count) {
    while (i < buf.length && isSpace(buf[i] as number)) i++;
    const begin = i;
    while (i < buf.length && !isSpace(buf[i] as number)) i++;
    if (i >= buf.length || begin === i) break;
    tokens.push(buf.toString('latin1', begin, i));
  }
  return tokens;
}

/**
 * Undoes the escaping proc_task_name() applies to `Name:` in status:
 * seq_escape_str(..., ESCAPE_SPACE | ESCAPE_SPECIAL, "\n\\") turns only a
 * newline into `\n` and a backslash into `\\`. Works on bytes so a name cut
 * inside a UTF-8 sequence can still be decoded by decodeComm().
 */
function unescapeStatusName(escaped: Uint8Array): Uint8Array {
  const BACKSLASH = 0x5c;
  const LETTER_N = 0x6e;
  const out: number[] = [];
  for (let i = 0; i < escaped.length; i++) {
    const byte = escaped[i] as number;
    const next = escaped[i + 1];
    if (byte === BACKSLASH && next === LETTER_N) {
      out.push(NEWLINE);
      i++;
    } else if (byte === BACKSLASH && next === BACKSLASH) {
      out.push(BACKSLASH);
      i++;
    } else {
      out.push(byte);
    }
  }
  return Uint8Array.from(out);
}

function firstNumber(value: string): number | undefined {
  const first = value.trim().split(/\s+/)[0] ?? '';
  return DECIMAL.test(first) ? Number(first) : undefined;
}

/**
 * Parses `/proc/<pid>/status` (proc_pid_status() in fs/proc/array.c).
 *
 * Lines come and go between kernel versions and configs, so unknown lines
 * are skipped and missing ones leave their field undefined. A last line
 * without its newline was cut by a short read and is ignored, for the same
 * reason as in parseStat(): `Uid:\t10` may be the start of `Uid:\t1000`.
 */
export function parseStatus(bytes: Uint8Array): ProcStatus {
  const buf = asBuffer(bytes);
  const result: ProcStatus = {};
  let lineStart = 0;
  for (;;) {
    const lineEnd = buf.indexOf(NEWLINE, lineStart);
    if (lineEnd === -1) break;
    const line = buf.subarray(lineStart, lineEnd);
    lineStart = lineEnd + 1;

    const colon = line.indexOf(0x3a);
    if (colon === -1) continue;
    const key = line.toString('latin1', 0, colon);
    // The kernel writes "Key:\tvalue"; only the name needs exact bytes.
    let valueStart = colon + 1;
    if (line[valueStart] === 0x09) valueStart++;

    switch (key) {
      case 'Name': {
        const { text, lossy } = decodeComm(unescapeStatusName(line.subarray(valueStart)));
        result.name = text;
        result.nameLossy = lossy;
        break;
      }
      // State and PPid come from stat, which is read through the same fd.
      case 'Tgid':
      case 'Uid': {
        // "Uid:\treal\teffective\tsaved\tfs": the first number is the real
        // uid, who started the process, which is what Perfetto's process
        // tree records too.
        const number = firstNumber(line.toString('latin1', valueStart));
        if (number === undefined) break;
        if (key === 'Tgid') result.tgid = number;
        else result.uid = number;
        break;
      }
      default:
        break;
    }
    // proc_pid_status() prints Name, State, Tgid and PPid before Uid; the
    // ~50 lines after it (memory, signals, capabilities) are not needed.
    if (result.uid !== undefined && result.tgid !== undefined && result.name !== undefined) break;
  }
  return result;
}

/**
 * Parses `/proc/<pid>/cmdline` (get_mm_cmdline() in fs/proc/base.c).
 *
 * Normally each argument ends in NUL. Two cases break that:
 * - The file is empty for kernel threads and zombies, which have no mm.
 * - A process that rewrote its argv (setproctitle) so the last argv byte is
 *   not NUL gets its title back up to the first NUL, or with no NUL at all
 *   when the title fills the area. The bytes after the last NUL are then
 *   still an argument, not garbage.
 * Titles with no NULs are often space-separated ("nginx: worker process");
 * they stay one argument, because splitting on spaces would also break real
 * arguments that contain spaces.
 */
export function parseCmdline(bytes: Uint8Array): ProcCmdline {
  if (bytes.length === 0) return { argv: [], lossy: false };
  const body = bytes[bytes.length - 1] === 0 ? bytes.subarray(0, bytes.length - 1) : bytes;
  // Plain ASCII (nearly every argv): one decode and one split, both builtins.
  if (isAscii(body)) return { argv: latin1Slice.call(body, 0, body.length).split('\0'), lossy: false };
  const argv: string[] = [];
  let lossy = false;
  let argStart = 0;
  for (;;) {
    const nul = body.indexOf(0, argStart);
    const end = nul === -1 ? body.length : nul;
    const decoded = decodeUtf8(body.subarray(argStart, end));
    argv.push(decoded.text);
    lossy ||= decoded.lossy;
    if (nul === -1) break;
    argStart = nul + 1;
  }
  return { argv, lossy };
}

const NS_PER_SECOND = 1_000_000_000n;

/**
 * Converts clock ticks from stat field 22 to nanoseconds since boot.
 *
 * The kernel rounds task->start_boottime down to ticks (nsec_to_clock_t()),
 * so at USER_HZ 100 the result can be up to 10 ms early; it is not an exact
 * start time. USER_HZ is 100 on every architecture Linux still ships, but
 * callers can pass sysconf(_SC_CLK_TCK).
 */
export function ticksToNs(ticks: bigint, userHz = BigInt(USER_HZ)): bigint {
  if (userHz <= 0n) throw new RangeError(`ticksToNs: userHz must be positive, got ${userHz}`);
  return (ticks * NS_PER_SECOND) / userHz;
}
