// The Guard library API on the real kernel: lifecycle, errors, cleanup.
import { chmodSync, chownSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { beforeEach, describe, expect, it } from 'vitest';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { Guard } from '../../src/guard/guard.js';
import { PidgenError } from '../../src/errors.js';
import { mountsOfType } from '../../src/host/mounts.js';
import { expectNothingLeft, isRoot, pidgenKernelObjects } from '../helpers/kernel.js';

describe.runIf(isRoot)('[kernel] Guard lifecycle', () => {
  const gap = bpfGuardKernelGap();
  beforeEach((ctx) => {
    if (gap) ctx.skip(gap);
  });

  it('reports the attach point used and why earlier ones were refused, with errno', () => {
    const guard = Guard.open();
    try {
      expect(guard.attach).toMatch(/^(fexit\/alloc_pid|tp_btf\/task_newtask|raw_tp\/task_newtask)$/);
      const order = ['fexit/alloc_pid', 'tp_btf/task_newtask', 'raw_tp/task_newtask'];
      // Everything refused comes before the one used, in order.
      expect(guard.refused.map((r) => r.attach)).toEqual(order.slice(0, order.indexOf(guard.attach)));
      for (const refusal of guard.refused) {
        expect(refusal.code).toMatch(/^E[A-Z]+$/);
        expect(refusal.errno).toBeGreaterThan(0);
        expect(refusal.message).toContain(refusal.attach);
      }
    } finally {
      guard.close();
    }
  });

  it('the scanning namespace is the one /proc lists, and it is seeded', () => {
    const guard = Guard.open();
    try {
      const counter = guard.counter();
      expect(counter?.inum).toBe(guard.namespace);
      expect(counter?.seeded || counter?.firstSeenLate).toBe(true);
      expect(guard.namespaces().map((n) => n.inum)).toContain(guard.namespace);
      expect(typeof guard.generation()).toBe('bigint');
    } finally {
      guard.close();
    }
  });

  it('closing twice is safe, and a closed guard throws PidgenError EBADF instead of reading freed state', () => {
    const guard = Guard.open();
    guard.close();
    guard.close();
    expect(guard.closed).toBe(true);
    let error: unknown;
    try {
      guard.generation();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PidgenError);
    expect(error).toMatchObject({ code: 'EBADF', errno: 9 });
  });

  it('`using` closes the guard at the end of the scope', async () => {
    {
      using guard = Guard.open();
      expect(pidgenKernelObjects().progs.length).toBeGreaterThan(0);
      guard.generation();
    }
    expect(await expectNothingLeft()).toEqual({ progs: [], links: [], maps: [] });
  });

  it('a worker that ends without closing its guard leaves nothing loaded (environment cleanup hook)', async () => {
    const worker = new Worker(join(import.meta.dirname, '..', 'helpers', 'worker-guard.mjs'));
    const [message] = (await once(worker, 'message')) as [{ attach: string }];
    expect(message.attach).toMatch(/task_newtask|alloc_pid/);
    expect(pidgenKernelObjects().progs.length).toBeGreaterThan(0);
    await worker.terminate();
    expect(await expectNothingLeft()).toEqual({ progs: [], links: [], maps: [] });
  });

  it('a pin directory root does not own alone is not trusted: pinned \'only\' refuses it naming the directory, owner and mode; \'auto\' loads a private guard', async (ctx) => {
    if (!mountsOfType('bpf').includes('/sys/fs/bpf')) ctx.skip('no bpffs mounted at /sys/fs/bpf');
    // A real pidgen pin (the counter of a guard that then exits), in a
    // directory of its own beside the host's /sys/fs/bpf/pidgen.
    const pinDir = `/sys/fs/bpf/pidgen-untrusted-test-${process.pid}`;
    expect(existsSync(pinDir)).toBe(false);
    mkdirSync(pinDir, { mode: 0o700 });
    try {
      const pinner = Guard.open({ pinned: 'never' });
      pinner.pin(pinDir);
      pinner.close();
      // Root's own 0700 directory: the pin is used, nothing is loaded.
      const trusted = Guard.open({ pinned: 'only', pinDir });
      expect(trusted.pinned).toBe(true);
      trusted.close();

      for (const [uid, mode, why] of [
        [65534, 0o755, 'owned by uid 65534, mode 0755, not owned by root'],
        [0, 0o777, 'owned by uid 0, mode 0777, writable by others'],
        [0, 0o770, 'owned by uid 0, mode 0770, writable by its group'],
      ] as const) {
        chownSync(pinDir, uid, uid);
        chmodSync(pinDir, mode);
        let error: unknown;
        try {
          Guard.open({ pinned: 'only', pinDir }).close();
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(PidgenError);
        expect(error).toMatchObject({ code: 'EPERM', target: pinDir });
        expect((error as Error).message).toBe(`open pinned guard ${pinDir}: the directory is ${why}, so its pins cannot be trusted`);
        const auto = Guard.open({ pinned: 'auto', pinDir });
        try {
          expect(auto.pinned).toBe(false);
          expect(auto.attach).toMatch(/task_newtask|alloc_pid/);
        } finally {
          auto.close();
        }
      }
    } finally {
      // Unlinking the pins detaches the program and frees the maps.
      rmSync(pinDir, { recursive: true, force: true });
    }
    expect(existsSync(pinDir)).toBe(false);
    expect(await expectNothingLeft()).toEqual({ progs: [], links: [], maps: [] });
  });
});
