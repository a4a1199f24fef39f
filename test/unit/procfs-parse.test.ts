// Unit tests for the /proc parsers, run on real files captured from a Linux
// 6.18 VM (test/fixtures/proc/README.md). Expected PIDs, parents and names
// come from facts.json, which the captured processes wrote about themselves,
// so a test passing means the parser agrees with the process, not merely with
// a second reading of the same file.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeComm, decodeUtf8 } from '../../src/procfs/decode.js';
import {
  parseCmdline,
  parseStat,
  parseStatus,
  ProcParseError,
  ticksToNs,
  type ProcStat,
} from '../../src/procfs/parse.js';

const FIXTURES = new URL('../fixtures/proc/', import.meta.url);

function fixture(name: string): Buffer {
  return readFileSync(new URL(name, FIXTURES));
}

interface StatFacts {
  pid: number;
  ppid: number;
  comm: string;
  commLossy?: boolean;
  state?: string;
  kernelThread: boolean;
}
interface StatusFacts {
  name: string;
  nameLossy?: boolean;
  tgid: number;
  ppid: number;
  uid: number;
  state?: string;
}
interface CmdlineFacts {
  argv: string[];
  lossy?: boolean;
}
interface Facts {
  kernel: string;
  files: Record<string, unknown>;
}

const facts = JSON.parse(fixture('facts.json').toString('utf8')) as Facts;

function factsFor<T>(name: string): T {
  const found = facts.files[name];
  if (found === undefined) throw new Error(`facts.json has no entry for ${name}`);
  return found as T;
}

function expectStatMatchesFacts(name: string): ProcStat {
  const expected = factsFor<StatFacts>(name);
  const stat = parseStat(fixture(name));
  expect(stat.pid).toBe(expected.pid);
  expect(stat.ppid).toBe(expected.ppid);
  expect(stat.comm).toBe(expected.comm);
  expect(stat.commLossy).toBe(expected.commLossy ?? false);
  expect(stat.kernelThread).toBe(expected.kernelThread);
  if (expected.state !== undefined) expect(stat.state).toBe(expected.state);
  expect(stat.startTicks).toBeGreaterThan(0n);
  return stat;
}

function expectStatusMatchesFacts(name: string): void {
  const expected = factsFor<StatusFacts>(name);
  const status = parseStatus(fixture(name));
  expect(status.name).toBe(expected.name);
  expect(status.nameLossy).toBe(expected.nameLossy ?? false);
  expect(status.tgid).toBe(expected.tgid);
  expect(status.uid).toBe(expected.uid);
}

/** Every prefix of `whole`, as a short read of the file could return. */
function* prefixes(whole: Buffer): Generator<Buffer> {
  for (let length = 0; length < whole.length; length++) yield whole.subarray(0, length);
}

describe('decodeUtf8: argv and other byte strings', () => {
  it('passes valid UTF-8 through unchanged, byte-order mark included', () => {
    const text = '\uFEFFnaïve — 日本語 🦀';
    expect(decodeUtf8(Buffer.from(text, 'utf8'))).toEqual({ text, lossy: false });
  });

  it('shows each invalid byte as one U+FFFD and says the text is lossy', () => {
    expect(decodeUtf8(Uint8Array.of(0x61, 0xff, 0xfe, 0x62))).toEqual({
      text: 'a\uFFFD\uFFFDb',
      lossy: true,
    });
    // A lead byte whose sequence is broken by an ASCII byte: both bad bytes
    // are counted, and the ASCII byte survives.
    expect(decodeUtf8(Uint8Array.of(0xe2, 0x82, 0x41))).toEqual({
      text: '\uFFFD\uFFFDA',
      lossy: true,
    });
  });

  it('rejects overlong forms and UTF-16 surrogates rather than decoding them', () => {
    // C0 AF is an overlong "/"; ED A0 80 is the surrogate U+D800.
    expect(decodeUtf8(Uint8Array.of(0xc0, 0xaf)).text).toBe('\uFFFD\uFFFD');
    expect(decodeUtf8(Uint8Array.of(0xed, 0xa0, 0x80)).text).toBe('\uFFFD\uFFFD\uFFFD');
  });

  it('marks an argument that ends mid-character as lossy: argv is not truncated by the kernel', () => {
    expect(decodeUtf8(Uint8Array.of(0x61, 0xc3))).toEqual({ text: 'a\uFFFD', lossy: true });
  });
});

describe('decodeComm: process and thread names', () => {
  it('drops a character the kernel cut in half and does not call the name lossy', () => {
    const crab = Buffer.from('🦀', 'utf8'); // F0 9F A6 80
    for (let kept = 1; kept < crab.length; kept++) {
      const name = Buffer.concat([Buffer.from('abc'), crab.subarray(0, kept)]);
      expect(decodeComm(name)).toEqual({ text: 'abc', lossy: false });
    }
  });

  it('still marks a name lossy when the bad byte is not at the end', () => {
    expect(decodeComm(Uint8Array.of(0x61, 0xc3, 0x62))).toEqual({ text: 'a\uFFFDb', lossy: true });
  });

  it('reads a NUL-padded comm[16] from task_struct the same as the name in /proc', () => {
    const comm = new Uint8Array(16);
    comm.set(Buffer.from('abcdefghijklmn\xc3', 'latin1'));
    expect(decodeComm(comm)).toEqual({ text: 'abcdefghijklmn', lossy: false });
  });
});

describe('parseStat on real files', () => {
  it('reads pid, parent, state and start time from a real /proc/self/stat', () => {
    const stat = expectStatMatchesFacts('real/self-stat');
    expect(stat.flags & 0x00200000).toBe(0);
  });

  it('reports kthreadd (PID 2) as a kernel thread whose parent is 0', () => {
    expectStatMatchesFacts('real/kthread-2-stat');
  });

  it('keeps a kernel thread name longer than 15 bytes whole', () => {
    const stat = expectStatMatchesFacts('real/kthread-long-name-stat');
    expect(Buffer.byteLength(stat.comm)).toBeGreaterThan(15);
  });

  it('reads a zombie: state Z, its own name, and the parent that has not reaped it', () => {
    expectStatMatchesFacts('real/zombie-stat');
  });

  it("reads a thread's task/<tid>/stat: its TID, its own name, and its process's parent", () => {
    expectStatMatchesFacts('real/thread-task-stat');
  });

  it('passes a complete multibyte name such as "café-€" through unchanged', () => {
    expectStatMatchesFacts('real/comm-utf8-stat');
  });
});

describe('parseStat on hostile names (real processes named with prctl)', () => {
  it('a process named `a) b (c` keeps its whole name and its real ppid', () => {
    const stat = expectStatMatchesFacts('hostile/comm-paren-stat');
    expect(stat.comm).toBe('a) b (c');
    expect(stat.state).toBe('S');
  });

  it('a process with a newline and a backslash in its name keeps both, and its fields', () => {
    const stat = expectStatMatchesFacts('hostile/comm-newline-stat');
    expect(stat.comm).toBe('nl\nand\\back');
  });

  it('a 15-byte name the kernel cut inside "é" loses only the partial character, not marked lossy', () => {
    expect(fixture('hostile/comm-cut-2byte-stat').includes(Buffer.from('abcdefghijklmn\xc3)', 'latin1'))).toBe(true);
    const stat = expectStatMatchesFacts('hostile/comm-cut-2byte-stat');
    expect(stat.comm).toBe('abcdefghijklmn');
    expect(stat.commLossy).toBe(false);
  });

  it('a 15-byte name the kernel cut inside "€" (two of three bytes kept) is handled the same way', () => {
    const stat = expectStatMatchesFacts('hostile/comm-cut-3byte-stat');
    expect(stat.comm).toBe('abcdefghijklm');
  });

  it('a name with a byte that is never UTF-8 shows U+FFFD and is marked lossy', () => {
    const stat = expectStatMatchesFacts('hostile/comm-invalid-byte-stat');
    expect(stat.comm).toBe('bad\uFFFDname');
    expect(stat.commLossy).toBe(true);
  });
});

describe('parseStat on cut-short reads', () => {
  it('a stat cut inside starttime throws ProcParseError instead of returning a wrong start time', () => {
    const truncated = fixture('hostile/stat-truncated');
    const error = (() => {
      try {
        parseStat(truncated);
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ProcParseError);
    const parseError = error as ProcParseError;
    expect(parseError.file).toBe('stat');
    expect(parseError.field).toBe('starttime (field 22)');
    expect(parseError.inputLength).toBe(truncated.length);
    expect(parseError.message).toContain(`${truncated.length} bytes`);
  });

  it('no prefix of a real stat line ever parses to a wrong pid, parent or start time', () => {
    for (const name of ['real/self-stat', 'hostile/comm-paren-stat', 'hostile/comm-newline-stat']) {
      const whole = fixture(name);
      const full = parseStat(whole);
      for (const prefix of prefixes(whole)) {
        let partial: ProcStat;
        try {
          partial = parseStat(prefix);
        } catch (caught) {
          expect(caught).toBeInstanceOf(ProcParseError);
          continue;
        }
        expect(partial).toEqual(full);
      }
    }
  });

  it('a stat cut after starttime still parses: later fields are not needed', () => {
    const whole = fixture('real/self-stat');
    const full = parseStat(whole);
    const afterStart = whole.indexOf(` ${full.startTicks} `) + ` ${full.startTicks} `.length;
    expect(parseStat(whole.subarray(0, afterStart))).toEqual(full);
  });

  it('an empty read names the comm as the missing field', () => {
    expect(() => parseStat(Buffer.alloc(0))).toThrow(/comm \(field 2\)/);
  });
});

describe('parseStatus', () => {
  it('takes the real uid, not the effective one, from a process that called setresuid(1000, 2000, 3000)', () => {
    expectStatusMatchesFacts('real/setresuid-status');
    expect(fixture('real/setresuid-status').toString()).toContain('Uid:\t1000\t2000\t3000\t2000\n');
  });

  it('reads kthreadd and a zombie', () => {
    expectStatusMatchesFacts('real/kthread-2-status');
    expectStatusMatchesFacts('real/zombie-status');
  });

  it("reads a thread's status: its Tgid is the process, not the thread", () => {
    expectStatusMatchesFacts('real/thread-task-status');
    const tid = factsFor<StatFacts>('real/thread-task-stat').pid;
    expect(parseStatus(fixture('real/thread-task-status')).tgid).not.toBe(tid);
  });

  it('unescapes the \\n and \\\\ the kernel writes into Name:', () => {
    expect(fixture('hostile/comm-newline-status').toString()).toContain('Name:\tnl\\nand\\\\back\n');
    expectStatusMatchesFacts('hostile/comm-newline-status');
  });

  it('agrees with stat for the hostile names', () => {
    for (const stem of ['comm-paren', 'comm-cut-2byte', 'comm-cut-3byte', 'comm-invalid-byte']) {
      expectStatusMatchesFacts(`hostile/${stem}-status`);
      const stat = parseStat(fixture(`hostile/${stem}-stat`));
      const status = parseStatus(fixture(`hostile/${stem}-status`));
      expect(status.name).toBe(stat.comm);
      expect(status.nameLossy).toBe(stat.commLossy);
    }
  });

  it('skips lines it does not know and leaves missing ones undefined', () => {
    expect(parseStatus(Buffer.from('Future:\tsomething\nUid:\t5\t6\t7\t8\nGarbage line\n'))).toEqual({ uid: 5 });
    expect(parseStatus(Buffer.alloc(0))).toEqual({});
  });

  it('never reports a number from a line a short read cut off', () => {
    const whole = fixture('real/setresuid-status');
    const full = parseStatus(whole);
    for (const prefix of prefixes(whole)) {
      const partial = parseStatus(prefix);
      for (const [key, value] of Object.entries(partial)) {
        expect(value).toBe(full[key as keyof typeof full]);
      }
    }
    expect(parseStatus(Buffer.from('Name:\tx\nUid:\t10'))).toEqual({ name: 'x', nameLossy: false });
  });
});

describe('parseCmdline', () => {
  it('keeps an argument with a space whole and an empty argument in place', () => {
    const expected = factsFor<CmdlineFacts>('real/args-cmdline');
    expect(parseCmdline(fixture('real/args-cmdline'))).toEqual({ argv: expected.argv, lossy: false });
  });

  it('gives a zombie (no mm, empty file) an empty argv', () => {
    expect(fixture('real/zombie-cmdline').length).toBe(0);
    expect(parseCmdline(fixture('real/zombie-cmdline'))).toEqual({ argv: [], lossy: false });
  });

  it('keeps the title of a process that rewrote its argv (no NUL at all) as one argument', () => {
    const expected = factsFor<{ title: string; length: number }>('hostile/setproctitle-cmdline');
    const bytes = fixture('hostile/setproctitle-cmdline');
    expect(bytes.includes(0)).toBe(false);
    const { argv, lossy } = parseCmdline(bytes);
    expect(argv).toHaveLength(1);
    expect(argv[0]?.trimEnd()).toBe(expected.title);
    expect(argv[0]).toHaveLength(expected.length);
    expect(lossy).toBe(false);
  });

  it('shows non-UTF-8 argv bytes as U+FFFD and marks the command line lossy', () => {
    const expected = factsFor<CmdlineFacts>('hostile/non-utf8-cmdline');
    expect(parseCmdline(fixture('hostile/non-utf8-cmdline'))).toEqual({ argv: expected.argv, lossy: true });
  });

  it('keeps embedded empty arguments and the last argument when the trailing NUL is missing', () => {
    expect(parseCmdline(Buffer.from('a\0\0b\0')).argv).toEqual(['a', '', 'b']);
    expect(parseCmdline(Buffer.from('a\0\0b')).argv).toEqual(['a', '', 'b']);
    expect(parseCmdline(Buffer.from('\0')).argv).toEqual(['']);
  });
});

describe('ticksToNs', () => {
  it('turns USER_HZ ticks into nanoseconds since boot, in 10 ms steps at 100 Hz', () => {
    const stat = parseStat(fixture('real/self-stat'));
    expect(ticksToNs(stat.startTicks)).toBe(stat.startTicks * 10_000_000n);
    expect(ticksToNs(3n, 1024n)).toBe(2_929_687n);
  });

  it('keeps 64-bit tick counts exact', () => {
    expect(ticksToNs(18_446_744_073_709_551_615n)).toBe(184_467_440_737_095_516_150_000_000n);
  });

  it('rejects a non-positive USER_HZ', () => {
    expect(() => ticksToNs(1n, 0n)).toThrow(RangeError);
  });
});
