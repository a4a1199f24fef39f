// The generation counter against real rollovers in real child PID
// namespaces: the BPF programs are loaded into the running kernel, and the
// expected counts come from the forking shell itself, not from pidgen.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Guard, type AttachKind } from '../../src/guard/guard.js';
import { PidgenError } from '../../src/errors.js';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { expectNothingLeft, isRoot } from '../helpers/kernel.js';
import {
  forkLoopScript,
  nestedForkLoopScript,
  parseNs,
  parseObserved,
  printNsScript,
  runInChildPidNs,
  smallPidMax,
  totalWraps,
  withSmallPidMax,
} from '../helpers/pidns.js';

const readHostLastPid = () => Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));

// Which attach points this kernel accepts; each one that loads is tested.
function loads(kind: AttachKind): boolean {
  try {
    Guard.open({ attach: kind }).close();
    return true;
  } catch (error) {
    if (error instanceof PidgenError) return false;
    throw error;
  }
}

const opened: Guard[] = [];
afterEach(() => {
  for (const guard of opened.splice(0)) guard.close();
});
function openGuard(kind: AttachKind): Guard {
  const guard = Guard.open({ attach: kind });
  opened.push(guard);
  return guard;
}

describe.runIf(isRoot)('[kernel] generation counter under forced rollovers', () => {
  const kinds = (['fexit', 'tp_btf', 'raw_tp'] as const).filter((kind) => {
    const ok = loads(kind);
    if (!ok) console.warn(`[kernel] ${kind} does not load on this kernel; its rollover tests are skipped here`);
    return ok;
  });

  const gap = bpfGuardKernelGap();

  it('loads at least one attach point on this kernel', (ctx) => {
    if (gap) ctx.skip(gap);
    expect(kinds.length).toBeGreaterThan(0);
  });

  it('where the kernel lacks the BPF atomics (< 5.12), every attach point is refused with EINVAL and a clear error', (ctx) => {
    if (!gap) ctx.skip('this kernel has BPF atomic xchg (>= 5.12)');
    expect(kinds).toEqual([]);
    let error: unknown;
    try {
      Guard.open().close();
    } catch (e) {
      error = e;
    }
    // The message says why (the kernel's gap), and the hint what to use instead.
    expect((error as Error).message).toBe(
      `open guard: every attach point was refused: fexit/alloc_pid (EINVAL), tp_btf/task_newtask (EINVAL), raw_tp/task_newtask (EINVAL): ${gap}`,
    );
    expect(error).toMatchObject({ code: 'ENOATTACH', hint: expect.stringMatching(/use the cursor guard/) });
  });

  describe.each(kinds)('attached via %s', (kind) => {
    it('1000 sequential forks in a child namespace with pid_max 400: generation equals the wraps the forker saw, and the host is unchanged', (ctx) => withSmallPidMax(ctx, () => {
      const guard = openGuard(kind);
      const hostBefore = guard.generation();
      const hostLastBefore = readHostLastPid();

      const stdout = runInChildPidNs(
        'echo 400 > /proc/sys/kernel/pid_max\n' + printNsScript('ns') + forkLoopScript('loop', 1000),
      );
      const inum = parseNs(stdout, 'ns');
      const observed = parseObserved(stdout, 'loop');

      // 1000 forks through numbers 300..399 after the first pass must wrap.
      expect(observed.wraps).toBeGreaterThanOrEqual(5);
      expect(guard.generation(inum)).toBe(BigInt(observed.wraps));
      const counter = guard.counter(inum);
      expect(counter?.allocations).toBeGreaterThanOrEqual(1000n);
      // Born after attach: its PID 1 was the baseline, nothing was guessed.
      expect(counter?.firstSeenLate).toBe(false);

      // The host only moves if its own cursor went down meanwhile. With the
      // global pid_max lowered (a guest before 6.14) the root namespace
      // wraps as well, so there is no unchanged host to check.
      if (smallPidMax.how !== 'namespace') return;
      const hostLastAfter = readHostLastPid();
      if (hostLastAfter >= hostLastBefore) expect(guard.generation()).toBe(hostBefore);
      else expect(guard.generation()).toBeGreaterThan(hostBefore);
    }));

    it('nested namespaces two levels deep are counted independently, each in its own numbers', (ctx) => {
      // Two cycle lengths at once (pid_max 400 outside, 350 inside) need one
      // pid_max per namespace; a single global one cannot stand in.
      if (smallPidMax.how !== 'namespace') ctx.skip('needs per-namespace pid_max (Linux >= 6.14): two nested namespaces with different pid_max');
      const guard = openGuard(kind);
      const outerProc = '/run/pidgen-test-outer-proc';
      const inner = [
        'echo 350 > /proc/sys/kernel/pid_max',
        printNsScript('inner_ns'),
        nestedForkLoopScript('b', 600, outerProc),
      ].join('\n');
      const stdout = runInChildPidNs(
        [
          'echo 400 > /proc/sys/kernel/pid_max',
          printNsScript('outer_ns'),
          // The outer procfs stays reachable from the inner namespace, so the
          // inner forks can report their outer numbers.
          `mkdir -p ${outerProc} && mount -t proc proc ${outerProc}`,
          forkLoopScript('a', 250),
          `unshare -pfm --mount-proc bash -euc ${shellQuote(inner)}`,
          forkLoopScript('c', 250),
        ].join('\n'),
      );
      const outerNs = parseNs(stdout, 'outer_ns');
      const innerNs = parseNs(stdout, 'inner_ns');
      const innerWraps = parseObserved(stdout, 'b_inner').wraps;
      const outerWraps = totalWraps([
        parseObserved(stdout, 'a'),
        parseObserved(stdout, 'b_outer'),
        parseObserved(stdout, 'c'),
      ]);

      expect(innerNs).not.toBe(outerNs);
      expect(innerWraps).toBeGreaterThanOrEqual(5);
      expect(outerWraps).toBeGreaterThanOrEqual(5);
      // Different pid_max, different cycle lengths: the counts differ, and
      // each namespace's generation is its own.
      expect(innerWraps).not.toBe(outerWraps);
      expect(guard.generation(innerNs)).toBe(BigInt(innerWraps));
      expect(guard.generation(outerNs)).toBe(BigInt(outerWraps));
    });
  });

  it('a guard opened inside a namespace that already allocated PIDs is seeded from ns_last_pid and catches a wrap right after attach', (ctx) => withSmallPidMax(ctx, () => {
    if (gap) ctx.skip(gap);
    // The namespace exists (and is close to its wrap) before the guard opens:
    // a program attached now sees its first allocation with nr > 1. Seeding
    // lastNr from ns_last_pid is what lets the very next wrap count.
    const probe = join(import.meta.dirname, '..', 'helpers', 'seeded-guard-probe.mjs');
    const stdout = runInChildPidNs(
      [
        'echo 400 > /proc/sys/kernel/pid_max',
        // Walk the cursor to just below the wrap point before pidgen starts.
        'while read n < /proc/sys/kernel/ns_last_pid; (( n < 380 )); do /bin/true; done',
        `${process.execPath} ${probe}`,
      ].join('\n'),
    );
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as {
      seeded: boolean;
      firstSeenLate: boolean;
      seededLastNr: number;
      generationAfterOneFork: string;
      wraps: number;
      generation: string;
    };
    expect(result.seeded).toBe(true);
    expect(result.firstSeenLate).toBe(false);
    expect(result.seededLastNr).toBeGreaterThanOrEqual(380);
    // A seed, not a conservative first-sight bump: no wrap, no bump.
    expect(result.generationAfterOneFork).toBe('0');
    expect(result.wraps).toBeGreaterThanOrEqual(1);
    expect(result.generation).toBe(String(result.wraps));
  }));

  it('nothing of pidgen stays in the kernel once every guard is closed', async () => {
    for (const kind of kinds) openGuard(kind).generation();
    for (const guard of opened.splice(0)) guard.close();
    const left = await expectNothingLeft();
    expect(left).toEqual({ progs: [], links: [], maps: [] });
  });
});

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

