// Pinned mode on the real kernel: a counter that outlives the command, read
// by later processes without loading anything, and removed without a trace.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { mountsOfType } from '../../src/host/mounts.js';
import { CLI, runCli } from '../helpers/cli.js';
import { expectNothingLeft, isRoot, pidgenKernelObjects } from '../helpers/kernel.js';
import { forkLoopScript, parseNs, parseObserved, printNsScript, runInChildPidNs, withSmallPidMax } from '../helpers/pidns.js';

const PIN_DIR = '/sys/fs/bpf/pidgen';
const nothing = { progs: [], links: [], maps: [] };

describe.runIf(isRoot)('[kernel] pidgen pin / unpin / status', () => {
  const bpffsWasMounted = mountsOfType('bpf').includes('/sys/fs/bpf');

  beforeAll(() => {
    if (existsSync(PIN_DIR)) throw new Error(`${PIN_DIR} exists before the test: unpin it first`);
  });
  afterAll(() => {
    runCli(['unpin']);
    // Leave the host's mounts as we found them.
    if (!bpffsWasMounted && mountsOfType('bpf').includes('/sys/fs/bpf')) spawnSync('umount', ['/sys/fs/bpf']);
  });

  it('pin, then a rollover in a child namespace: `pidgen gen` in a new process shows the bump, snapshots load nothing, and unpin leaves nothing', (ctx) => withSmallPidMax(ctx, async () => {
    const gap = bpfGuardKernelGap();
    if (gap) ctx.skip(`pinning needs the BPF guard: ${gap}`);
    const first = runCli(['pin']);
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/pinned at \/sys\/fs\/bpf\/pidgen via (tp_btf|raw_tp|fexit)\S*, with the task iterator;/);
    // Idempotent.
    const again = runCli(['pin']);
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/already pinned at \/sys\/fs\/bpf\/pidgen since \d{4}-/);

    // The pinner has exited; its programs (counter and task iterator) are
    // still attached, held by the pinned links.
    for (const link of ['link', 'iter']) {
      const shown = JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show', 'pinned', `${PIN_DIR}/${link}`], { encoding: 'utf8' })) as {
        prog_id: number;
      };
      expect(pidgenKernelObjects().progs.some((p) => p.startsWith(`${shown.prog_id}:pidgen`))).toBe(true);
    }

    // Rollovers inside a child namespace, then `pidgen gen` from a new
    // process inside it: the current namespace is the child one.
    const stdout = runInChildPidNs(
      [
        'echo 400 > /proc/sys/kernel/pid_max',
        printNsScript('ns'),
        forkLoopScript('loop', 500),
        `echo "gen=$(${process.execPath} ${CLI} gen 2>/tmp/pidgen-pin-test.err)"`,
        'echo "note=$(cat /tmp/pidgen-pin-test.err)"',
      ].join('\n'),
    );
    const wraps = parseObserved(stdout, 'loop').wraps;
    expect(wraps).toBeGreaterThan(0);
    expect(stdout).toContain(`gen=${wraps}\n`);
    expect(stdout).toMatch(/note=pidgen: using the pinned counter/);
    const inum = parseNs(stdout, 'ns');

    const status = JSON.parse(runCli(['status', '--json']).stdout) as {
      pinned: boolean;
      attach: string;
      since: string;
      namespaces: { inum: number; generation: string }[];
    };
    expect(status.pinned).toBe(true);
    expect(status.attach).toMatch(/task_newtask|alloc_pid/);
    expect(Date.parse(status.since)).toBeLessThanOrEqual(Date.now());
    expect(status.namespaces.find((n) => n.inum === inum)?.generation).toBe(String(wraps));

    // A snapshot on the pinned counter makes no BPF_PROG_LOAD at all.
    const traced = spawnSync('strace', ['-f', '-e', 'trace=bpf', '-o', '/tmp/pidgen-pin-strace.txt', process.execPath, CLI, 'snapshot'], {
      maxBuffer: 256 << 20,
      encoding: 'utf8',
    });
    expect(traced.status).toBe(0);
    // Both the counter and the task iterator come from the pins.
    expect(JSON.parse(traced.stdout)).toMatchObject({ source: 'bpf-iter', guard: { kind: 'bpf', pinned: true } });
    const syscalls = execFileSync('cat', ['/tmp/pidgen-pin-strace.txt'], { encoding: 'utf8' });
    expect(syscalls).toMatch(/BPF_OBJ_GET/);
    expect(syscalls).not.toMatch(/BPF_PROG_LOAD/);

    const unpinned = runCli(['unpin']);
    expect(unpinned.status).toBe(0);
    expect(unpinned.stdout).toMatch(/removed link, exit_link, iter, ns, log, bss, iter_bss, meta/);
    expect(existsSync(PIN_DIR)).toBe(false);
    expect(await expectNothingLeft()).toEqual(nothing);
    expect(runCli(['status']).stdout).toMatch(/^not pinned/);
  }));

  it('an incompatible older pin (another layout version) is refused with a clear message; unpin clears it', async () => {
    runCli(['unpin']); // whatever the previous test left if it failed midway
    if (!mountsOfType('bpf').includes('/sys/fs/bpf')) execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
    mkdirSync(PIN_DIR);
    // A meta record of layout 99, as a future or past pidgen might leave.
    execFileSync('bpftool', ['map', 'create', `${PIN_DIR}/meta`, 'type', 'array', 'key', '4', 'value', '24', 'entries', '1', 'name', 'pidgen_meta']);
    const value = ['99', ...Array<string>(23).fill('0')];
    execFileSync('bpftool', ['map', 'update', 'pinned', `${PIN_DIR}/meta`, 'key', '0', '0', '0', '0', 'value', ...value]);

    const pin = runCli(['pin']);
    expect(pin.status).toBe(1);
    expect(pin.stderr).toMatch(/already pinned by an incompatible pidgen \(layout 99; this pidgen uses \d+\)/);
    expect(pin.stderr).toMatch(/hint: run `pidgen unpin`/);

    const gen = runCli(['gen']);
    expect(gen.status).toBe(1);
    expect(gen.stderr).toMatch(/incompatible pidgen/);

    expect(runCli(['unpin']).status).toBe(0);
    expect(existsSync(PIN_DIR)).toBe(false);
    expect(await expectNothingLeft()).toEqual(nothing);
  });

  it('a /sys/fs/bpf/pidgen that another user made (bpffs is mode 1777) is refused by pin and left by unpin, both naming its owner and mode and how to clear it; snapshots ignore it', async () => {
    runCli(['unpin']); // whatever an earlier test left if it failed midway
    if (!mountsOfType('bpf').includes('/sys/fs/bpf')) execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
    execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'mkdir', '-m', '0755', PIN_DIR]);
    try {
      expect(statSync(PIN_DIR).uid).toBe(65534);
      const pin = runCli(['pin']);
      expect(pin.status).toBe(1);
      expect(pin.stderr).toMatch(
        /pin \/sys\/fs\/bpf\/pidgen: the directory exists but is owned by nobody \(uid 65534\), mode 0755, not owned by root \(empty\)/,
      );
      expect(pin.stderr).toMatch(/hint: .*remove it as root \(rm -r \/sys\/fs\/bpf\/pidgen\), then run `pidgen pin`/);

      const unpin = runCli(['unpin']);
      expect(unpin.status).toBe(1);
      expect(unpin.stderr).toMatch(
        /unpin \/sys\/fs\/bpf\/pidgen: not pidgen's pin directory: owned by nobody \(uid 65534\), mode 0755, not owned by root \(empty\); left alone/,
      );
      expect(existsSync(PIN_DIR)).toBe(true);

      // A snapshot does not take it for a pin, and loads (and frees) its own.
      const snapshot = runCli(['snapshot', '--no-threads']);
      expect(snapshot.status, snapshot.stderr).toBe(0);
      expect((JSON.parse(snapshot.stdout) as { guard: { pinned?: boolean } }).guard.pinned).toBeFalsy();
      expect(await expectNothingLeft()).toEqual(nothing);
    } finally {
      rmdirSync(PIN_DIR);
    }

    // Root's own directory is refused too while others can write it.
    mkdirSync(PIN_DIR);
    chmodSync(PIN_DIR, 0o777);
    try {
      const pin = runCli(['pin']);
      expect(pin.status).toBe(1);
      expect(pin.stderr).toMatch(/owned by root \(uid 0\), mode 0777, writable by others \(empty\)/);
    } finally {
      rmdirSync(PIN_DIR);
    }
    expect(await expectNothingLeft()).toEqual(nothing);
  });
});
