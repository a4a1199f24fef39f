// The pidgen CLI as a user runs it: a separate process, real BPF programs,
// real exit codes. Expected values come from the kernel (bpftool, forks in a
// child namespace), not from pidgen's own code.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { expectNothingLeft, isRoot } from '../helpers/kernel.js';
import { forkLoopScript, parseNs, parseObserved, printNsScript, runInChildPidNs, withSmallPidMax } from '../helpers/pidns.js';
import { runCli, spawnCli } from '../helpers/cli.js';

const NOBODY = 65534;
// The BPF guard needs Linux >= 5.12; `gen` cannot work without it.
const gap = bpfGuardKernelGap();

describe('[kernel] pidgen gen', () => {
  it.runIf(isRoot)('prints one line: the current namespace generation in decimal, and nothing on stderr even though fexit is refused', (ctx) => {
    if (gap) ctx.skip(gap);
    const result = runCli(['gen']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^\d+\n$/);
    // libbpf's warnings about the refused attach point stay quiet by default.
    expect(result.stderr).toBe('');
  });

  it.runIf(isRoot)('--all prints a table with the scanning namespace marked, and --json gives the same as JSON with decimal-string counters', (ctx) => {
    if (gap) ctx.skip(gap);
    const table = runCli(['gen', '--all']);
    expect(table.status).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NS INODE\s+GENERATION\s+ALLOCATIONS\s+LAST PID$/);
    const scanningRow = lines.find((l) => / \*\s/.test(l));
    expect(scanningRow).toBeDefined();

    const json = runCli(['gen', '--all', '--json']);
    expect(json.status).toBe(0);
    const parsed = JSON.parse(json.stdout) as {
      attach: string;
      scanningNs: number;
      namespaces: { inum: number; scanning: boolean; generation: string; allocations: string; lastNr: number }[];
    };
    expect(parsed.attach).toMatch(/task_newtask|alloc_pid/);
    const scanning = parsed.namespaces.find((n) => n.scanning);
    expect(scanning?.inum).toBe(parsed.scanningNs);
    expect(scanning?.generation).toMatch(/^\d+$/);
    expect(scanning?.allocations).toMatch(/^\d+$/);
    expect(scanningRow?.startsWith(String(parsed.scanningNs))).toBe(true);
  });

  it.runIf(isRoot)('--watch prints a timestamped line for each generation change in a child namespace, stops on Ctrl-C with exit 0, and leaves nothing loaded', (ctx) => withSmallPidMax(ctx, async () => {
    if (gap) ctx.skip(gap);
    const watcher = spawnCli(['gen', '--watch', '--interval', '20']);
    let stdout = '';
    let stderr = '';
    watcher.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    watcher.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // Wait until it is attached before forcing rollovers.
    while (!stderr.includes('Ctrl-C to stop')) {
      if (watcher.exitCode !== null) throw new Error(`watch exited early: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const run = runInChildPidNs('echo 400 > /proc/sys/kernel/pid_max\n' + printNsScript('ns') + forkLoopScript('loop', 400));
    const inum = parseNs(run, 'ns');
    const wraps = parseObserved(run, 'loop').wraps;
    await new Promise((r) => setTimeout(r, 300));
    watcher.kill('SIGINT');
    const [code] = (await once(watcher, 'exit')) as [number | null];
    expect(code).toBe(0);

    const lines = stdout.split('\n').filter((l) => l.includes(`ns ${inum} `));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ns \d+ generation \d+ -> \d+ \(\+\d+\) last pid \d+$/);
    // Polling may merge bumps, but the last line reaches the true count.
    expect(lines.at(-1)).toContain(`-> ${wraps} `);
    expect(await expectNothingLeft()).toEqual({ progs: [], links: [], maps: [] });
  }));

  it.runIf(isRoot)('a SIGKILLed watcher leaves no program, link or map in the kernel', async (ctx) => {
    if (gap) ctx.skip(gap);
    const watcher = spawnCli(['gen', '--watch']);
    let stderr = '';
    watcher.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    while (!stderr.includes('Ctrl-C to stop')) await new Promise((r) => setTimeout(r, 20));
    watcher.kill('SIGKILL');
    await once(watcher, 'exit');
    expect(await expectNothingLeft()).toEqual({ progs: [], links: [], maps: [] });
  });

  it.runIf(isRoot)('without root it names the missing capabilities and what to do, exits 1, and prints no stack trace', () => {
    const result = runCli(['gen'], { asUser: NOBODY });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('missing CAP_BPF and CAP_PERFMON');
    expect(result.stderr).toMatch(/hint: run as root/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe('');
  });
});

describe('[kernel] pidgen gen before Linux 5.12', () => {
  it.runIf(isRoot)('exits 1 with one error line naming every refused attach point and a hint, and no stack trace', (ctx) => {
    if (!gap) ctx.skip('this kernel has BPF atomic xchg (>= 5.12)');
    const result = runCli(['gen']);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^pidgen: open guard: every attach point was refused: .*\(EINVAL\): (.*)\nhint: .*use the cursor guard/);
    expect(result.stderr).toContain(`(EINVAL): ${gap}\n`);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('[kernel] pidgen doctor', () => {
  it.runIf(isRoot)('reports kernel, BTF, capabilities, bpffs, tracefs and really tries each attach point, with advice for each one refused', () => {
    const result = runCli(['doctor']);
    expect(result.status).toBe(0);
    for (const name of ['kernel', 'btf', 'capabilities', 'bpffs', 'tracefs', 'native addon']) {
      expect(result.stdout).toMatch(new RegExp(`^(ok|FAIL|warn|--)\\s+${name}\\s`, 'm'));
    }
    for (const point of ['fexit/alloc_pid', 'tp_btf/task_newtask', 'raw_tp/task_newtask']) {
      expect(result.stdout).toMatch(new RegExp(`^(ok|warn|FAIL)\\s+attach ${point}\\s+(loads and attaches|refused: E[A-Z]+)$`, 'm'));
    }
    // Every check that is not ok is followed by one advice line.
    const lines = result.stdout.split('\n');
    lines.forEach((line, i) => {
      if (/^(FAIL|warn)\s/.test(line)) expect(lines[i + 1]).toMatch(/^\s+advice: \S/);
    });
    if (gap) {
      // One line says why: the kernel's version, not a list of errnos.
      expect(result.stdout).toMatch(/^warn\s+kernel\s+\S+ \(no BPF atomic xchg before 5\.12\)$/m);
      expect(result.stdout).toContain(`\nguard: cursor (no BPF guard can be loaded here: ${gap})\n`);
    } else {
      expect(result.stdout).toMatch(/^guard: bpf via (fexit\/alloc_pid|tp_btf\/task_newtask|raw_tp\/task_newtask)( \(pinned\))?$/m);
    }
    expect(result.stdout).toMatch(/^source: bpf-iter \(argv from (bpf|procfs)\)$/m);

    const json = JSON.parse(runCli(['doctor', '--json']).stdout) as { checks: { name: string; status: string }[] };
    expect(json.checks.map((c) => c.name)).toContain('attach tp_btf/task_newtask');
  });
});

describe('[kernel] pidgen doctor without privileges', () => {
  it.runIf(isRoot)('says the cursor guard and the procfs source will be used, with advice, and exits 0', () => {
    const result = runCli(['doctor'], { asUser: NOBODY });
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^FAIL\s+capabilities\s.*CAP_BPF \(no\)/m);
    expect(result.stdout).toMatch(/^guard: cursor \(no BPF guard can be loaded here: .*EPERM/m);
    expect(result.stdout).toMatch(/^source: procfs \(no privileges for BPF\)$/m);
  });
});

describe('the README\'s command', () => {
  it('`npx pidgen` runs the built CLI through its bin link in this checkout', () => {
    const root = join(import.meta.dirname, '..', '..');
    const result = spawnSync('npx', ['--no-install', 'pidgen', '--version'], { cwd: root, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('pidgen usage errors', () => {
  it.each([
    [['gen', '--bogus'], /unknown option '--bogus'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['gen', '--watch', '--interval', 'soon'], /--interval must be an integer/],
    [['gen', '--watch', '--interval', '0'], /--interval must be an integer/],
    [[], /Usage: pidgen/],
  ])('pidgen %j prints usage and exits 2', (args, message) => {
    const result = runCli(args);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it.each([[['--help']], [['gen', '--help']], [['doctor', '--help']]])('pidgen %j prints help and exits 0', (args) => {
    const result = runCli(args);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^Usage: pidgen/);
  });
});
