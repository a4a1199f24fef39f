// Output formats on a hand-built snapshot holding the cases that break naive
// writers: a comm with `)` and spaces, a comm with a newline, non-ASCII argv,
// a kernel thread, a zombie, a reused PID and 64-bit values above 2^53.

import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PidgenError } from '../../src/errors.js';
import { removePendingTempFiles, writeFileAtomic } from '../../src/output/atomic-write.js';
import { fromJSON, toJSON, toJSONL, toJSONObject } from '../../src/output/json.js';
import { toTable } from '../../src/output/table.js';
import type { Snapshot } from '../../src/model/snapshot.js';

// Both above Number.MAX_SAFE_INTEGER (2^53 - 1): a double would round them.
const BIG_INO = 9_007_199_254_740_993n; // 2^53 + 1
const BIG_GENERATION = 18_446_744_073_709_551_615n; // 2^64 - 1

function sampleSnapshot(): Snapshot {
  return {
    schema: 'pidgen.snapshot/2',
    host: { hostname: 'builder', kernel: '6.18.0-1-amd64', bootId: '0b6f2c1e-6a39-4c33-9d55-3a7c2e5f1d20' },
    pidNamespace: { inum: 4026531836 },
    clock: 'boottime',
    window: { startNs: 86_400_123_456_789n, endNs: 86_400_135_802_345n },
    source: 'procfs',
    guard: {
      kind: 'bpf',
      attach: 'tp_btf/task_newtask',
      generationBefore: BIG_GENERATION - 1n,
      generationAfter: BIG_GENERATION,
    },
    coherent: true,
    attempts: 2,
    reused: [
      { pid: 4242, atNs: 86_400_125_000_001n, creator: { pid: 1, tid: 1 } },
      { pid: 4242, atNs: 86_400_130_000_001n, holder: 4242, creator: { pid: 1200, tid: 1201 } },
    ],
    exited: [{ pid: 4242, tid: 4242, comm: 'brief', startNs: 86_400_125_000_001n, exitNs: 86_400_127_500_000n }],
    processes: [
      {
        pid: 1, ppid: 0, uid: 0, comm: 'systemd', cmdline: ['/sbin/init', 'splash'], state: 'S',
        startNs: 2_340_000_000n, startExact: true, pidfdIno: 3n, kernelThread: false,
        threads: [{ tid: 1, comm: 'systemd', state: 'S', startNs: 2_340_000_000n }],
      },
      {
        pid: 2, ppid: 0, uid: 0, comm: 'kthreadd', cmdline: [], state: 'S',
        startNs: 2_340_000_000n, startExact: false, kernelThread: true,
        threads: [{ tid: 2, comm: 'kthreadd', state: 'S', startNs: 2_340_000_000n }],
      },
      {
        // A process may name itself so that naive `(comm)` parsing breaks.
        pid: 1200, ppid: 1, uid: 1000, comm: 'a) b (c', cmdline: ['./evil', '--x'], state: 'R',
        startNs: 9_876_543_210_987n, startExact: true, pidfdIno: BIG_INO, kernelThread: false,
        threads: [
          { tid: 1200, comm: 'a) b (c', state: 'R', startNs: 9_876_543_210_987n },
          { tid: 1201, comm: 'worker', state: 'S', startNs: 9_876_600_000_000n },
        ],
      },
      {
        pid: 1300, ppid: 1, uid: 1000, comm: 'two\nlines', cmdline: ['printf', 'x\ny', '\u001b[31mred'], state: 'S',
        startNs: 10_000_000_000_000n, startExact: true, kernelThread: false,
        threads: [{ tid: 1300, comm: 'two\nlines', state: 'S', startNs: 10_000_000_000_000n }],
        lossy: ['cmdline'],
      },
      {
        pid: 1400, ppid: 1, uid: 1000, comm: 'café', cmdline: ['/usr/bin/café', 'naïve', '日本語', '\uFFFD', '🎉'], state: 'S',
        startNs: 11_000_000_000_000n, startExact: true, kernelThread: false,
        threads: [{ tid: 1400, comm: 'café', state: 'S', startNs: 11_000_000_000_000n }],
      },
      {
        pid: 1500, ppid: 1400, uid: null, comm: 'defunct-child', cmdline: [], state: 'Z',
        startNs: 12_000_000_000_000n, startExact: false, kernelThread: false,
        threads: [], unreadable: ['status', 'uid', 'threads'],
      },
      {
        // Took its PID from an older task inside the window; listed in `reused`.
        pid: 4242, ppid: 1, uid: 1000, comm: 'newcomer', cmdline: ['sleep', '1'], state: 'S',
        startNs: 86_400_130_000_001n, startExact: true, kernelThread: false,
        threads: [{ tid: 4242, comm: 'newcomer', state: 'S', startNs: 86_400_130_000_001n }],
      },
    ],
    stats: { tasks: 8, durationNs: 24_680_000n, repaired: 1, fullScans: 1 },
  };
}

const schema = JSON.parse(readFileSync(new URL('../../schema/snapshot-2.json', import.meta.url), 'utf8')) as object;
const schemaV1 = JSON.parse(readFileSync(new URL('../../schema/snapshot-1.json', import.meta.url), 'utf8')) as object;
const ajv = new Ajv2020({ allErrors: true, strict: true });
const validate = ajv.compile(schema);

describe('pidgen.snapshot/2 JSON', () => {
  it('toJSON output validates against schema/snapshot-2.json', () => {
    const ok = validate(JSON.parse(toJSON(sampleSnapshot())));
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('a non-coherent snapshot with a reason validates', () => {
    const snapshot = { ...sampleSnapshot(), coherent: false, reason: 'generation changed in all 3 attempts' };
    expect(validate(JSON.parse(toJSON(snapshot)))).toBe(true);
  });

  it('coherent:false without a reason fails validation', () => {
    const doc = JSON.parse(toJSON({ ...sampleSnapshot(), coherent: false }));
    expect(validate(doc)).toBe(false);
    expect(validate.errors?.some((e) => e.keyword === 'required' && e.params.missingProperty === 'reason')).toBe(true);
  });

  it('coherent:true with a reason fails validation (reason only when not coherent)', () => {
    expect(validate(JSON.parse(toJSON({ ...sampleSnapshot(), reason: 'stray' })))).toBe(false);
  });

  it('a misspelt field is caught (additionalProperties: false)', () => {
    const doc = toJSONObject(sampleSnapshot()) as unknown as { processes: Record<string, unknown>[] };
    doc.processes[0]!['startNS'] = '1';
    expect(validate(doc)).toBe(false);
  });

  it('a 64-bit value written as a JSON number fails validation', () => {
    const doc = toJSONObject(sampleSnapshot()) as unknown as { window: Record<string, unknown> };
    doc.window['startNs'] = 86400123456789;
    expect(validate(doc)).toBe(false);
  });

  it('fromJSON(toJSON(x)) deep-equals x, pretty or compact', () => {
    const snapshot = sampleSnapshot();
    expect(fromJSON(toJSON(snapshot))).toStrictEqual(snapshot);
    expect(fromJSON(toJSON(snapshot, { pretty: true }))).toStrictEqual(snapshot);
    const notCoherent: Snapshot = { ...snapshot, coherent: false, reason: 'pid 4242 reused twice' };
    expect(fromJSON(toJSON(notCoherent))).toStrictEqual(notCoherent);
  });

  it('64-bit values above 2^53 survive exactly, as decimal strings', () => {
    const text = toJSON(sampleSnapshot());
    expect(text).toContain('"pidfdIno":"9007199254740993"');
    expect(text).toContain('"generationAfter":"18446744073709551615"');
    const back = fromJSON(text);
    expect(back.processes[2]?.pidfdIno).toBe(BIG_INO);
    expect(back.guard.generationAfter).toBe(BIG_GENERATION);
  });

  it('keys come in schema order and absent optional fields are omitted, not null', () => {
    const doc = JSON.parse(toJSON(sampleSnapshot())) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual([
      'schema', 'host', 'pidNamespace', 'clock', 'window', 'source', 'guard', 'coherent', 'attempts', 'reused', 'exited', 'processes', 'stats',
    ]);
    const processes = doc['processes'] as Record<string, unknown>[];
    expect(Object.keys(processes[0]!)).toEqual([
      'pid', 'ppid', 'uid', 'comm', 'cmdline', 'state', 'startNs', 'startExact', 'pidfdIno', 'kernelThread', 'threads',
    ]);
    expect('pidfdIno' in processes[1]!).toBe(false);
    expect('reason' in doc).toBe(false);
  });

  it('toJSON ends with a newline; pretty output is indented', () => {
    expect(toJSON(sampleSnapshot()).endsWith('}\n')).toBe(true);
    expect(toJSON(sampleSnapshot()).split('\n')).toHaveLength(2);
    expect(toJSON(sampleSnapshot(), { pretty: true })).toMatch(/^\{\n  "schema": "pidgen.snapshot\/2",\n/);
  });

  it('fromJSON refuses another schema by name', () => {
    const doc = { ...(JSON.parse(toJSON(sampleSnapshot())) as object), schema: 'pidgen.snapshot/3' };
    expect(() => fromJSON(JSON.stringify(doc))).toThrow(/expected "schema": "pidgen.snapshot\/2", got "pidgen.snapshot\/3"/);
    expect(() => fromJSON('{"hello":1}')).toThrow(PidgenError);
  });

  it('fromJSON still reads a pidgen.snapshot/1 document: no exited list, and each hand-over\'s holder worked out from start times', () => {
    // A version 1 document as pidgen 0.1 wrote it: one hand-over per number, no holder, no exited.
    const v1 = JSON.parse(toJSON(sampleSnapshot())) as Record<string, unknown>;
    v1['schema'] = 'pidgen.snapshot/1';
    delete v1['exited'];
    v1['reused'] = [{ pid: 1201, atNs: '9876599000000' }, { pid: 4242, atNs: '86400130000001' }];
    expect(ajv.compile(schemaV1)(v1)).toBe(true);
    const back = fromJSON(JSON.stringify(v1));
    expect(back.exited).toEqual([]);
    // 1201 is a thread of 1200 that started after its hand-over, and 4242
    // the process that started exactly at its own: each is the holder.
    expect(back.reused).toEqual([
      { pid: 1201, atNs: 9_876_599_000_000n, holder: 1200 },
      { pid: 4242, atNs: 86_400_130_000_001n, holder: 4242 },
    ]);
    // A hand-over after the entry's start: the entry is the old holder.
    v1['reused'] = [{ pid: 1, atNs: '86400124000000' }];
    expect(fromJSON(JSON.stringify(v1)).reused).toEqual([{ pid: 1, atNs: 86_400_124_000_000n }]);
  });

  it('fromJSON names the JSON path of a bad field', () => {
    const doc = toJSONObject(sampleSnapshot()) as unknown as { processes: Record<string, unknown>[] };
    doc.processes[2]!['startNs'] = 12.5;
    expect(() => fromJSON(JSON.stringify(doc))).toThrow(/\$\.processes\[2\]\.startNs should be a decimal string, got 12\.5/);
  });
});

describe('JSONL', () => {
  it('is one header line (no processes, with processCount) and one line per process', () => {
    const snapshot = sampleSnapshot();
    const text = toJSONL(snapshot);
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n');
    expect(lines).toHaveLength(1 + snapshot.processes.length);

    const header = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(header['processes']).toBeUndefined();
    expect(header['processCount']).toBe(snapshot.processes.length);
    expect(header['schema']).toBe('pidgen.snapshot/2');

    // Reassembled, the lines are the JSON document, so each line validates as a process.
    const { processCount: _, ...rest } = header;
    const processes = lines.slice(1).map((line) => JSON.parse(line) as unknown);
    const whole = { ...rest, processes };
    expect(validate(whole)).toBe(true);
    expect(fromJSON(JSON.stringify(whole))).toStrictEqual(snapshot);
  });
});

describe('JSONL line breaks', () => {
  it('a comm with U+2028, U+2029 or U+0085 does not split a line for splitlines-style readers', () => {
    const snapshot = sampleSnapshot();
    snapshot.processes[0]!.comm = 'x\u2028y\u2029z\u0085w';
    const text = toJSONL(snapshot);
    expect(text).not.toMatch(/[\u0085\u2028\u2029]/);
    const lines = text.slice(0, -1).split('\n');
    expect(lines).toHaveLength(1 + snapshot.processes.length);
    expect((JSON.parse(lines[1]!) as { comm: string }).comm).toBe('x\u2028y\u2029z\u0085w');
  });
});

describe('table', () => {
  const table = toTable(sampleSnapshot());
  const lines = table.slice(0, -1).split('\n');
  const headerEnd = lines.findIndex((line) => /^\s*PID\s+PPID\s+UID\s+STATE\s+THR\s+START\s+COMM\s+CMDLINE$/.test(line));
  const rows = lines.slice(headerEnd + 1);
  const row = (pid: number) => rows.find((line) => line.trimStart().startsWith(`${pid} `));

  it('has a short header naming namespace, source, guard and coherence', () => {
    expect(headerEnd).toBeGreaterThan(0);
    expect(headerEnd).toBeLessThanOrEqual(6);
    const header = lines.slice(0, headerEnd).join('\n');
    expect(header).toContain('pid namespace 4026531836');
    expect(header).toContain('source procfs');
    expect(header).toContain('guard bpf via tp_btf/task_newtask');
    expect(header).toContain('coherent: yes');
    expect(header).toContain('attempts 2');
    expect(header).toContain('reused 2');
    expect(header).toContain('exited 1');
    expect(header).toContain('tasks 8');
    expect(header).toContain('window 12.345 ms');
  });

  it('lists every hand-over and the tasks that exited in the window, escaped', () => {
    const text = toTable({
      ...sampleSnapshot(),
      reused: [{ pid: 7, atNs: 1_500_000_000n }, { pid: 7, atNs: 2_250_000_000n, holder: 7 }],
      exited: [{ pid: 9, tid: 10, comm: 'bad\u001bname', startNs: 1_000_000_000n, exitNs: 3_000_000_000n }],
    });
    expect(text).toContain('hand-overs (pid at s since boot, -> holder): 7 at 1.500, 7 at 2.250 -> 7');
    expect(text).toContain('exited in the window (pid/tid name, start-exit s since boot): 9/10 bad\\x1bname 1.000-3.000');
  });

  it('says why a snapshot is not coherent', () => {
    const text = toTable({ ...sampleSnapshot(), coherent: false, reason: 'generation changed' });
    expect(text).toContain('coherent: NO (generation changed)');
  });

  it('keeps one line per process even with a newline in a comm', () => {
    expect(rows).toHaveLength(sampleSnapshot().processes.length);
    const newlineRow = row(1300);
    expect(newlineRow).toContain('two\\nlines');
    expect(newlineRow).toContain('x\\ny');
    expect(newlineRow).toContain('\\x1b[31mred');
    expect(table).not.toContain('\u001b');
  });

  it('shows the hostile comm as is, non-ASCII argv intact, and [comm] for argv-less tasks', () => {
    expect(row(1200)).toContain('a) b (c');
    expect(row(1400)).toContain('/usr/bin/café naïve 日本語 \uFFFD 🎉');
    expect(row(2)).toContain('[kthreadd]');
    expect(row(1500)).toMatch(/ Z .*\[defunct-child\]$/);
  });

  it('prints START as seconds with 3 decimals, ~ when converted from clock ticks', () => {
    expect(row(1200)).toContain(' 9876.543  ');
    expect(row(2)).toContain(' 2.340~ ');
  });

  it('truncates a long command line to keep lines near 160 characters', () => {
    const snapshot = sampleSnapshot();
    snapshot.processes[0]!.cmdline = ['/usr/bin/java', ...Array.from({ length: 100 }, (_, i) => `-Dprop${i}=value${i}`)];
    const out = toTable(snapshot).split('\n');
    for (const line of out) expect(Array.from(line).length).toBeLessThanOrEqual(160);
    expect(out.find((line) => line.includes('/usr/bin/java'))).toMatch(/…$/);
  });
});

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pidgen-output-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves exactly the target file, with the data, replacing an old one', async () => {
    const target = join(dir, 'snap.json');
    writeFileSync(target, 'old contents');
    await writeFileAtomic(target, toJSON(sampleSnapshot()));
    expect(readdirSync(dir)).toEqual(['snap.json']);
    expect(fromJSON(readFileSync(target, 'utf8'))).toStrictEqual(sampleSnapshot());
    await writeFileAtomic(target, new TextEncoder().encode('bytes'));
    expect(readFileSync(target, 'utf8')).toBe('bytes');
    expect(readdirSync(dir)).toEqual(['snap.json']);
  });

  it('keeps the permission bits of a file it replaces', async () => {
    const target = join(dir, 'private.json');
    writeFileSync(target, 'x');
    chmodSync(target, 0o600);
    await writeFileAtomic(target, 'y');
    expect(statSync(target).mode & 0o777).toBe(0o600);
  });

  it('a device target (-o /dev/null) is written into, never replaced by a rename', async () => {
    // Regression: the rename used to put a regular file where /dev/null was.
    await writeFileAtomic('/dev/null', 'discarded\n');
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(readdirSync('/dev').filter((name) => name.startsWith('.null.'))).toEqual([]);
  });

  it('when the target is a directory: throws naming the path, leaves no temp file', async () => {
    const target = join(dir, 'is-a-dir');
    mkdirSync(target);
    const failure = writeFileAtomic(target, 'data');
    await expect(failure).rejects.toThrow(PidgenError);
    await expect(failure).rejects.toThrow(`write ${target}: rename temp file over target failed: EISDIR`);
    expect(readdirSync(dir)).toEqual(['is-a-dir']);
    expect(readdirSync(target)).toEqual([]);
  });

  it('when the directory does not exist: throws naming the path', async () => {
    const target = join(dir, 'missing', 'snap.json');
    await expect(writeFileAtomic(target, 'data')).rejects.toThrow(`write ${target}: create temp file failed: ENOENT`);
  });

  it('a write interrupted by removePendingTempFiles (the SIGINT path) leaves no temp file and no target', async () => {
    const target = join(dir, 'snap.json');
    const write = writeFileAtomic(target, 'x'.repeat(1 << 20));
    removePendingTempFiles(); // what the CLI's signal handler runs
    await expect(write).rejects.toThrow(/interrupted/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('removePendingTempFiles removes a temp file that exists mid-write', async () => {
    const target = join(dir, 'snap.json');
    writeFileSync(target, 'old');
    const write = writeFileAtomic(target, 'x'.repeat(8 << 20));
    // Wait until the temp file is on disk, then "signal".
    let removed: string[] = [];
    for (let i = 0; i < 1000 && removed.length === 0; i++) {
      if (readdirSync(dir).length > 1) removed = removePendingTempFiles();
      else await new Promise((r) => setImmediate(r));
    }
    const outcome = await write.then(() => 'written', (error: Error) => error.message);
    expect(removed).toHaveLength(1);
    expect(removed[0]).toMatch(/\/\.snap\.json\.\d+\.[0-9a-f]{12}\.tmp$/);
    expect(outcome).toMatch(/interrupted.*target left unchanged/);
    expect(readdirSync(dir)).toEqual(['snap.json']);
    expect(readFileSync(target, 'utf8')).toBe('old');
  });
});
