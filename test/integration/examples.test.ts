// The two examples in examples/ run as a user would run them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { afterAll, describe, expect, it } from 'vitest';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { runCli } from '../helpers/cli.js';
import { isRoot } from '../helpers/kernel.js';

const examples = join(import.meta.dirname, '..', '..', 'examples');
const TraceType = new protobuf.Root()
  .loadSync(join(import.meta.dirname, '..', '..', 'proto', 'perfetto_subset.proto'), { keepCase: true })
  .lookupType('perfetto.protos.Trace');

describe.runIf(isRoot)('[kernel] examples', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pidgen-examples-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('pid-gen-pattern.mjs brackets its own scan with the allocation log and reports what it saw', (ctx) => {
    const gap = bpfGuardKernelGap();
    if (gap) ctx.skip(`the example opens the BPF guard: ${gap}`);
    const result = spawnSync(process.execPath, [join(examples, 'pid-gen-pattern.mjs')], { encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { attach: string; attempts: number; processes: number; allocations: number };
    expect(report.attach).toMatch(/task_newtask|alloc_pid/);
    expect(report.attempts).toBeGreaterThanOrEqual(1);
    expect(report.allocations).toBeGreaterThanOrEqual(0);
    expect(report.processes).toBeGreaterThan(0);
  });

  it('append-baseline.mjs puts a baseline right after the ClockSnapshot of an existing trace and keeps its packets', () => {
    const trace = join(dir, 'recorded.pftrace');
    expect(runCli(['snapshot', '--format', 'perfetto', '-o', trace]).status).toBe(0);
    const recorded = (TraceType.toObject(TraceType.decode(readFileSync(trace)), { longs: String }) as { packet: unknown[] }).packet;

    const result = spawnSync(process.execPath, [join(examples, 'append-baseline.mjs'), trace], { encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    const after = (TraceType.toObject(TraceType.decode(readFileSync(trace)), { longs: String }) as {
      packet: { process_tree?: unknown; clock_snapshot?: unknown }[];
    }).packet;
    expect(after.length).toBeGreaterThan(recorded.length);
    // The recorded trace is pidgen's own standalone output, so it opens with
    // a ClockSnapshot; the baseline comes right after it, the rest follows.
    expect(recorded[0]).toHaveProperty('clock_snapshot');
    expect(after[0]).toEqual(recorded[0]);
    expect(after[1]!.process_tree).toBeDefined();
    expect(after.slice(after.length - recorded.length + 1)).toEqual(recorded.slice(1));
  });
});
