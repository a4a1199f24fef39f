// Nothing of pidgen stays in the kernel, however it ends: normal exit, an
// error thrown mid-snapshot, SIGINT, SIGTERM, SIGKILL. And a signal during
// `snapshot -o FILE` leaves neither a partial FILE nor a temporary file.
// Checked with bpftool, not with pidgen's own code.
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { installSnapshotHooks } from '../../src/snapshot/hooks.js';
import { snapshot } from '../../src/snapshot/snapshot.js';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { runCli } from '../helpers/cli.js';
import { expectNothingLeft, isRoot, pidgenKernelObjects } from '../helpers/kernel.js';

const nothing = { progs: [], links: [], maps: [] };

// The BPF guard where the kernel has its atomics (5.12); before that the
// cursor guard, and what is loaded mid-snapshot is the task iterator alone.
const guardKind = bpfGuardKernelGap() ? 'cursor' : 'bpf';

const HELD_CLI = join(import.meta.dirname, '..', 'helpers', 'held-cli.mjs');

/** Starts `pidgen snapshot` held at a point (test/helpers/held-cli.mjs), waits until it is there. */
async function heldSnapshot(point: 'after-walk' | 'before-rename', args: string[] = []) {
  const child = spawn(process.execPath, [HELD_CLI, point, 'snapshot', '--guard', guardKind, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  while (!stderr.includes(`test hold: ${point}`)) {
    if (child.exitCode !== null) throw new Error(`snapshot ended before the hold: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { child, exit };
}

describe.runIf(isRoot)('[kernel] teardown leaves nothing in the kernel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pidgen-teardown-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('normal exit of `pidgen snapshot`', async () => {
    expect(runCli(['snapshot', '--guard', guardKind, '-o', join(dir, 'normal.json')]).status).toBe(0);
    expect(await expectNothingLeft()).toEqual(nothing);
  });

  it('an error thrown in the middle of a snapshot (library): the promise rejects and the guard is closed', async () => {
    installSnapshotHooks({
      afterFirstWalk: () => {
        // Loaded right now, mid-window.
        expect(pidgenKernelObjects().progs.length).toBeGreaterThan(0);
        throw new Error('boom mid-snapshot');
      },
    });
    try {
      await expect(snapshot({ guard: guardKind })).rejects.toThrow('boom mid-snapshot');
    } finally {
      installSnapshotHooks({});
    }
    expect(await expectNothingLeft()).toEqual(nothing);
  });

  it.each(['SIGINT', 'SIGTERM', 'SIGKILL'] as const)('%s in the middle of a snapshot (loaded, mid-window)', async (signal) => {
    const { child, exit } = await heldSnapshot('after-walk');
    expect(pidgenKernelObjects().progs.length).toBeGreaterThan(0);
    child.kill(signal);
    const [code, killedBy] = await exit;
    if (signal === 'SIGKILL') expect(killedBy).toBe('SIGKILL');
    else expect(code).toBe(signal === 'SIGINT' ? 130 : 143);
    expect(await expectNothingLeft()).toEqual(nothing);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('%s during `snapshot -o FILE` leaves neither a partial FILE nor a temporary file', async (signal) => {
    const target = join(dir, `signal-${signal}.json`);
    const { child, exit } = await heldSnapshot('before-rename', ['-o', target]);
    // The complete temp file exists right now, beside the target.
    expect(readdirSync(dir).some((name) => name.startsWith(`.signal-${signal}.json.`))).toBe(true);
    child.kill(signal);
    await exit;
    expect(readdirSync(dir).filter((name) => name.includes(`signal-${signal}`))).toEqual([]);
    expect(await expectNothingLeft()).toEqual(nothing);
  });

  it('SIGINT during `snapshot -o FILE` over an existing FILE keeps the old contents', async () => {
    const target = join(dir, 'keep.json');
    writeFileSync(target, 'old contents\n');
    const { child, exit } = await heldSnapshot('before-rename', ['-o', target]);
    child.kill('SIGINT');
    await exit;
    expect(readFileSync(target, 'utf8')).toBe('old contents\n');
    expect(readdirSync(dir).filter((name) => name.includes('keep.json'))).toEqual(['keep.json']);
  });
});
