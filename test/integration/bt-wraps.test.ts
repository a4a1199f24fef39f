// bpf/pidgen.bt as an independent cross-check of the generation rule: it
// shares no code with the libbpf programs, and the expected wrap count comes
// from the forking shell itself (ns_last_pid read after every fork).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bpftraceSkipReason, wrapper } from '../helpers/bpftrace.js';
import { Guard } from '../../src/guard/guard.js';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { forkLoopScript, parseNs, parseObserved, printNsScript, runInChildPidNs, smallPidMax, withSmallPidMax } from '../helpers/pidns.js';


const skipReason = bpftraceSkipReason;

const readHostPidMax = () => readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim();

/** Starts pidgen.bt via the wrapper; resolves once BEGIN printed the header. */
function startPidgenBt() {
  const child = spawn(wrapper, ['pidgen.bt', '-q'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (/^TIME +NS_INUM /m.test(stdout)) resolve();
    });
    void exited.then((code) => reject(new Error(`pidgen.bt exited early (status ${code}): ${stderr}`)));
  });
  return {
    ready,
    /** SIGTERM: the wrapper passes it on, bpftrace runs END and exits. */
    async stop(): Promise<{ status: number | null; stdout: string; stderr: string }> {
      child.kill('SIGTERM');
      const status = await exited;
      return { status, stdout, stderr };
    },
  };
}

/** The END table line `@pidns[<inum>]: (GEN, ALLOCATIONS, LAST_NR)`. */
function parseSummary(stdout: string, inum: number) {
  const m = new RegExp(`^@pidns\\[${inum}\\]: \\((\\d+), (\\d+), (-?\\d+)\\)$`, 'm').exec(stdout);
  if (!m) throw new Error(`no @pidns[${inum}] line in: ${stdout}`);
  return { generation: Number(m[1]), allocations: Number(m[2]), lastNr: Number(m[3]) };
}

describe('[kernel] bpf/pidgen.bt under forced rollovers (needs bpftrace and root)', () => {
  it('[kernel] 1000 sequential forks in a child namespace with pid_max 400: pidgen.bt, the addon and the forker report the same wraps', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    await withSmallPidMax(ctx, () => forkAndCompare());
  });
});

/** pidgen.bt, the addon's guard and the forker, side by side over 1000 forks in a child namespace with pid_max 400. */
async function forkAndCompare(): Promise<void> {
  const hostPidMax = readHostPidMax();
  const tracer = startPidgenBt();
  // The addon's guard, attached beside bpftrace's program for the same run,
  // where the kernel has the BPF atomics it needs (5.12); pidgen.bt needs none.
  const guard = bpfGuardKernelGap() ? undefined : Guard.open({ pinned: 'never' });
  try {
    await tracer.ready;
    const stdout = runInChildPidNs(
      printNsScript('ns') + 'echo 400 > /proc/sys/kernel/pid_max\n' + forkLoopScript('loop', 1000),
    );
    const inum = parseNs(stdout, 'ns');
    const observed = parseObserved(stdout, 'loop');
    const result = await tracer.stop();
    expect(result.status, result.stderr).toBe(0);

    const summary = parseSummary(result.stdout, inum);
    expect(observed.wraps).toBeGreaterThan(0);
    expect(summary.generation).toBe(observed.wraps);
    if (guard) expect(guard.generation(inum)).toBe(BigInt(summary.generation));
    // bash as PID 1, stat for the inum, then the 1000 forks.
    expect(summary.allocations).toBe(1002);
    expect(summary.lastNr).toBe(observed.last);
    // Before 6.14 (a guest) the write was the global pid_max: no host to keep.
    if (smallPidMax.how === 'namespace') expect(readHostPidMax()).toBe(hostPidMax);
  } finally {
    guard?.close();
    await tracer.stop();
  }
}
