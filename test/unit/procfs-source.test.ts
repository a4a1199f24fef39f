// The procfs source's decisions on canned raw reads: what a vanished
// process, an unreadable file, a zombie or a kernel thread turns into.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listPids, toProcessEntry } from '../../src/source/procfs.js';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '..', 'fixtures', 'proc', name));
const EACCES = 13;
const ENOENT = 2;
const ESRCH = 3;

describe('procfs entries from raw reads', () => {
  it('a process whose directory vanished after readdir (ENOENT) is skipped, not an error', () => {
    expect(toProcessEntry({ pid: 4242, openErr: ENOENT })).toBeUndefined();
  });

  it('a process that died between open and read (ESRCH on any file) is skipped: no half-read entry', () => {
    const stat = fixture('real/self-stat');
    expect(toProcessEntry({ pid: 1, stat, cmdlineErr: ESRCH })).toBeUndefined();
    expect(toProcessEntry({ pid: 1, statErr: ESRCH })).toBeUndefined();
  });

  it('EACCES (a hidepid= mount) leaves a partial entry that names the fields it could not read', () => {
    const stat = fixture('real/self-stat');
    const pid = Number(stat.toString('latin1').split(' ')[0]);
    const entry = toProcessEntry({ pid, stat, statusErr: EACCES, cmdlineErr: EACCES, threads: [], threadsErr: EACCES });
    expect(entry).toBeDefined();
    expect(entry!.pid).toBe(pid);
    expect(entry!.unreadable).toEqual(expect.arrayContaining(['uid', 'cmdline', 'threads']));
    expect(entry!.uid).toBeNull();
    expect(entry!.comm.length).toBeGreaterThan(0);

    const hidden = toProcessEntry({ pid: 77, openErr: EACCES });
    expect(hidden?.unreadable).toEqual(['stat', 'status', 'cmdline', 'threads', 'uid']);
  });

  it('a zombie is reported with state Z and an empty cmdline', () => {
    const stat = fixture('real/zombie-stat');
    const pid = Number(stat.toString('latin1').split(' ')[0]);
    const entry = toProcessEntry({ pid, stat, status: fixture('real/zombie-status'), cmdline: fixture('real/zombie-cmdline'), threads: [] });
    expect(entry?.state).toBe('Z');
    expect(entry?.cmdline).toEqual([]);
    expect(entry?.unreadable).toBeUndefined();
  });

  it('a kernel thread is flagged kernelThread, with tick start converted to ns and startExact false', () => {
    const entry = toProcessEntry({ pid: 2, stat: fixture('real/kthread-2-stat'), status: fixture('real/kthread-2-status'), cmdline: Buffer.alloc(0), threads: [] });
    expect(entry?.kernelThread).toBe(true);
    expect(entry?.comm).toBe('kthreadd');
    expect(entry?.startExact).toBe(false);
    expect(entry!.startNs % 10_000_000n).toBe(0n);
  });

  it('a process named `a) b (c` keeps its name, and a non-UTF-8 cmdline is marked lossy', () => {
    const stat = fixture('hostile/comm-paren-stat');
    const pid = Number(stat.toString('latin1').split(' ')[0]);
    const entry = toProcessEntry({ pid, stat, status: fixture('hostile/comm-paren-status'), cmdline: fixture('hostile/non-utf8-cmdline'), threads: [] });
    expect(entry?.comm).toBe('a) b (c');
    expect(entry?.lossy).toEqual(['cmdline']);
    expect(entry?.cmdline.join(' ')).toContain('\uFFFD');
  });

  it('a thread that exited between listing task/ and reading it is left out; the process stays', () => {
    const stat = fixture('real/self-stat');
    const pid = Number(stat.toString('latin1').split(' ')[0]);
    const entry = toProcessEntry({
      pid,
      stat,
      cmdline: fixture('real/args-cmdline'),
      threads: [{ tid: pid, stat }, { tid: pid + 1, statErr: ENOENT }],
    });
    expect(entry?.threads.map((t) => t.tid)).toEqual([pid]);
  });

  it('/proc/<n> that resolves to a thread of another process (n was a TID) is not taken for a process', () => {
    // Regression (found by the churn test): process n died, a thread of
    // another process took n, and /proc/<n> resolves TIDs even though
    // readdir hides them. Status says Tgid != n.
    const stat = fixture('real/thread-task-stat');
    const tid = Number(stat.toString('latin1').split(' ')[0]);
    const status = fixture('real/thread-task-status');
    expect(/^Tgid:\s*(\d+)/m.exec(status.toString('latin1'))?.[1]).not.toBe(String(tid));
    expect(toProcessEntry({ pid: tid, stat, status, cmdline: Buffer.alloc(0), threads: [] })).toBeUndefined();
    // And pidfd_open's EINVAL (not a group leader) says the same.
    expect(toProcessEntry({ pid: tid, stat, cmdline: Buffer.alloc(0), threads: [], pidfdErr: 22 })).toBeUndefined();
  });

  it('a stat that names another pid than the directory is not trusted', () => {
    expect(toProcessEntry({ pid: 999_999, stat: fixture('real/self-stat'), threads: [] })).toBeUndefined();
  });
});

describe('listing /proc', () => {
  it('lists only canonical numeric entries, ascending', () => {
    const pids = [...listPids('/proc')];
    expect(pids).toContain(process.pid);
    expect([...pids].sort((a, b) => a - b)).toEqual(pids);
    expect(pids.every((p) => Number.isInteger(p) && p > 0)).toBe(true);
  });

  it('names that only look numeric are not PIDs', () => {
    const root = mkdtempSync(join(tmpdir(), 'pidgen-listpids-'));
    try {
      for (const name of ['12', '0012', '+3', ' 4', '1e3', '5x', 'self', '7', '0', '99999999999']) mkdirSync(join(root, name));
      expect([...listPids(root)]).toEqual([7, 12]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a /proc that does not exist is an error that names the path', () => {
    expect(() => listPids('/nonexistent/proc')).toThrowError(/readdir \/nonexistent\/proc: ENOENT/);
  });
});
