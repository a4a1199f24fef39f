// One task-iterator pass, as packed bytes, turned into entries: the bytes
// are written here exactly as bpf/task_iter.bpf.c lays them out (struct
// pidgen_task_record, then argv padded to 8), including hostile ones.
import { describe, expect, it } from 'vitest';
import { parseTaskRecords } from '../../src/iter/task-iter.js';
import { PF_KTHREAD, TASK_CMDLINE, TASK_CMDLINE_TRUNCATED, TASK_RECORD as R } from '../../src/model/layout.js';
import { entriesFromPass } from '../../src/source/bpf-iter.js';

interface Task {
  tid: number;
  tgid?: number;
  ppid?: number;
  uid?: number;
  flags?: number;
  state?: number;
  exitState?: number;
  startNs?: bigint;
  ino?: bigint;
  comm: string | Uint8Array;
  argv?: Uint8Array;
  recordFlags?: number;
}

function pass(tasks: Task[]): Buffer {
  const parts: Buffer[] = [];
  for (const t of tasks) {
    const record = Buffer.alloc(R.size);
    record.writeBigUInt64LE(t.startNs ?? BigInt(t.tid) * 1_000_000n, R.startNs);
    record.writeBigUInt64LE(t.ino ?? 0n, R.ino);
    record.writeUInt32LE(t.tgid ?? t.tid, R.tgid);
    record.writeUInt32LE(t.tid, R.tid);
    record.writeUInt32LE(t.ppid ?? 1, R.ppid);
    record.writeUInt32LE(t.uid ?? 0, R.uid);
    record.writeUInt32LE(t.flags ?? 0, R.flags);
    record.writeUInt32LE(t.state ?? 1, R.state);
    record.writeUInt32LE(t.exitState ?? 0, R.exitState);
    record.writeUInt32LE(t.argv?.length ?? 0, R.cmdlineLen);
    record.writeUInt32LE(t.recordFlags ?? (t.argv ? TASK_CMDLINE : 0), R.recordFlags);
    const comm = typeof t.comm === 'string' ? Buffer.from(t.comm) : Buffer.from(t.comm);
    comm.copy(record, R.comm, 0, Math.min(comm.length, 16));
    parts.push(record);
    if (t.argv) {
      const padded = Buffer.alloc((t.argv.length + 7) & ~7);
      Buffer.from(t.argv).copy(padded);
      parts.push(padded);
    }
  }
  return Buffer.concat(parts);
}

const argv = (...args: string[]) => Buffer.from(args.map((a) => `${a}\0`).join(''));

describe('task iterator pass into entries', () => {
  it('groups threads under their process, with argv from the pass', () => {
    const bytes = pass([
      { tid: 10, comm: 'server', argv: argv('/usr/bin/server', '--port', '80'), ino: 77n },
      { tid: 11, tgid: 10, comm: 'worker-1' },
      { tid: 12, tgid: 10, comm: 'worker-2' },
      { tid: 20, comm: 'sh', argv: argv('sh') },
    ]);
    const { entries, needArgv } = entriesFromPass(bytes, true);
    expect(needArgv).toEqual([]);
    expect([...entries.keys()]).toEqual([10, 20]);
    const server = entries.get(10)!;
    expect(server.cmdline).toEqual(['/usr/bin/server', '--port', '80']);
    expect(server.pidfdIno).toBe(77n);
    expect(server.startExact).toBe(true);
    expect(server.threads.map((t) => [t.tid, t.comm])).toEqual([
      [10, 'server'],
      [11, 'worker-1'],
      [12, 'worker-2'],
    ]);
  });

  it('a thread listed before its leader (numbers wrapped) still lands in order', () => {
    const bytes = pass([
      { tid: 5, tgid: 900, comm: 'early' },
      { tid: 900, comm: 'leader', argv: argv('leader') },
      { tid: 901, tgid: 900, comm: 'late' },
    ]);
    const { entries } = entriesFromPass(bytes, true);
    expect(entries.get(900)!.threads.map((t) => t.tid)).toEqual([5, 900, 901]);
  });

  it('a thread whose leader the pass did not list is left out, as /proc would', () => {
    const { entries } = entriesFromPass(pass([{ tid: 31, tgid: 30, comm: 'orphan' }]), true);
    expect(entries.size).toBe(0);
  });

  it('without threads, only leaders are kept and entries list no threads', () => {
    const bytes = pass([
      { tid: 10, comm: 'a', argv: argv('a') },
      { tid: 11, tgid: 10, comm: 'a' },
    ]);
    const { entries } = entriesFromPass(bytes, false);
    expect(entries.get(10)!.threads).toEqual([]);
  });

  it('asks /proc for argv it could not take from the pass', () => {
    const bytes = pass([
      { tid: 40, comm: 'long', recordFlags: TASK_CMDLINE_TRUNCATED },
      // No trailing NUL: the process rewrote its argv, /proc has rules for that.
      { tid: 41, comm: 'title', argv: Buffer.from('nginx: worker process') },
      { tid: 42, comm: 'plain' },
      { tid: 43, comm: 'kworker/0:1', flags: PF_KTHREAD, ppid: 2 },
      { tid: 44, comm: 'zombie', exitState: 0x20 },
    ]);
    const { entries, needArgv } = entriesFromPass(bytes, true);
    expect(needArgv).toEqual([40, 41, 42]);
    expect(entries.get(43)!.kernelThread).toBe(true);
    expect(entries.get(43)!.cmdline).toEqual([]);
    expect(entries.get(44)!.cmdline).toEqual([]);
    expect(entries.get(44)!.state).toBe('Z');
  });

  it('hostile names and argv decode without loss of the valid bytes, and say where bytes were lost', () => {
    const bytes = pass([
      { tid: 50, comm: Buffer.from([0x66, 0xff, 0x6f, 0x0a]), argv: Buffer.from([0x61, 0x00, 0xc3, 0x28, 0x00]) },
      { tid: 51, comm: 'naïve', argv: argv('échec', '', 'x y') },
      { tid: 52, comm: Buffer.from('ab\u001b[31mcdefghijklmnopq'), argv: argv('\u001b]0;pwn\u0007') },
    ]);
    const { entries } = entriesFromPass(bytes, true);
    expect(entries.get(50)).toMatchObject({ comm: 'f\uFFFDo\n', cmdline: ['a', '\uFFFD('], lossy: ['comm', 'cmdline'] });
    expect(entries.get(51)).toMatchObject({ comm: 'naïve', cmdline: ['échec', '', 'x y'] });
    expect(entries.get(51)!.lossy).toBeUndefined();
    // comm is 16 bytes with no NUL: all 16 kept, nothing invented.
    expect(entries.get(52)!.comm).toBe('ab\u001b[31mcdefghijk');
    expect(entries.get(52)!.cmdline).toEqual(['\u001b]0;pwn\u0007']);
  });

  it('agrees with the record-by-record parser on every field both give', () => {
    const bytes = pass([
      { tid: 60, comm: 'p', argv: argv('p', 'q'), uid: 1000, ppid: 7, state: 0x402, startNs: 123_456_789n, ino: 9n },
      { tid: 61, tgid: 60, comm: 't', state: 0, startNs: 223_456_789n },
    ]);
    const records = parseTaskRecords(bytes);
    const entry = entriesFromPass(bytes, true).entries.get(60)!;
    expect(entry).toMatchObject({ pid: records[0]!.tgid, ppid: records[0]!.ppid, uid: records[0]!.uid, startNs: records[0]!.startNs, comm: records[0]!.comm, state: 'I' });
    expect(entry.threads[1]).toEqual({ tid: 61, comm: 't', state: 'R', startNs: 223_456_789n });
  });

  it('a pass that does not start on an 8-byte boundary reads the same', () => {
    const bytes = pass([
      { tid: 80, comm: 'a', argv: argv('a', 'b'), startNs: 5n },
      { tid: 81, tgid: 80, comm: 'b', startNs: 6n },
    ]);
    const shifted = Buffer.alloc(bytes.length + 3);
    bytes.copy(shifted, 3);
    expect(entriesFromPass(shifted.subarray(3), true).entries).toEqual(entriesFromPass(bytes, true).entries);
  });

  it('a record whose argv runs past the end of the pass is an error, not a guess', () => {
    const bytes = pass([{ tid: 70, comm: 'x', argv: argv('abcdefgh') }]).subarray(0, R.size + 4);
    expect(() => entriesFromPass(bytes, true)).toThrowError(/record for tid 70 runs past the end/);
  });
});
