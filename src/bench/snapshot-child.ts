/**
 * One in-library measurement for `pidgen bench`, in a fresh Node process so
 * its peak RSS is pidgen's alone.
 *
 * Usage: node snapshot-child.js SOURCE          (library)
 *        node snapshot-child.js cli-phases      (the CLI's path, cold)
 *
 * Library: opens the BPF guard and, for bpf-iter, the task iterator
 * (untimed: a library user holds one Guard and one TaskIterator across
 * snapshots; the CLI row of the bench pays the loads), then calls snapshot()
 * with threads and cmdline: the first call pays V8's cold start on pidgen's
 * parsers; after LIBRARY_CALLS[source].warmUp more, the median of .timed is the steady
 * state the bench reports; one more runs with the phase profile on
 * (src/profile.ts) for the breakdown. For bpf-iter it then times the kernel
 * pass alone (kernelPass below). Prints
 * one JSON line:
 *   {"wallNs", "firstCallNs", "openNs", "phases", "kernel", "tasks", "processes", "coherent", "attempts", "source", "attach"}
 * or {"unavailable": "<why>"} when the source cannot be used here, or
 * {"failed": "<why>"} when the snapshot threw.
 *
 * cli-phases: what `pidgen snapshot --format json` does, in the same
 * order, each step timed, in a process that has run nothing else: Node's
 * own start, loading the modules, snapshot() (its loads and phases, cold),
 * writing the JSON. Prints {"nodeStartNs", "importNs", "snapshotNs",
 * "phases", "outputNs", "pinned"}.
 */
// Only the basics at the top: cli-phases times the loading of the rest.
import { PidgenError, UsageError } from '../errors.js';
import type { TaskIterator } from '../iter/task-iter.js';
import { LIBRARY_CALLS } from './job.js';
import type { SnapshotSource } from '../model/snapshot.js';
import { startProfile, stopProfile } from '../profile.js';


function print(report: object): void {
  process.stdout.write(JSON.stringify(report) + '\n');
}

const nowNs = () => process.hrtime.bigint();
const since = (start: bigint) => Number(process.hrtime.bigint() - start);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] ?? 0;
}

/**
 * The kernel pass alone, median of `runs` reads each: pidgen's program with
 * and without argv, the plain program kernels before 5.18 get (every field
 * through BPF_CORE_READ, as the sleepable one read them too until direct
 * loads), and the yardstick (pidgen_iter_minimal).
 */
async function kernelPass(iterator: TaskIterator, runs = 5): Promise<Record<string, number | string>> {
  const { nativeAddon } = await import('../native/addon.js');
  const { ITER_CMDLINE, ITER_THREADS } = await import('../model/layout.js');
  const time = (read: () => unknown) =>
    median(
      Array.from({ length: runs }, () => {
        const start = nowNs();
        read();
        return since(start);
      }),
    );
  const out: Record<string, number | string> = {
    withArgvNs: time(() => iterator.readBytes({ threads: true, cmdline: true })),
    withoutArgvNs: time(() => iterator.readBytes({ threads: true, cmdline: false })),
  };
  for (const [key, options] of [
    ['plainNs', { sleepable: false }],
    ['minimalNs', { sleepable: false, minimal: true }],
  ] as const) {
    let other;
    try {
      other = nativeAddon().openTaskIterator(options);
    } catch (error) {
      if (!(error instanceof PidgenError)) throw error;
      out[key.replace('Ns', 'Unavailable')] = error.message;
      continue;
    }
    try {
      out[key] = time(() => other.read(ITER_THREADS | ITER_CMDLINE));
    } finally {
      other.close();
    }
  }
  return out;
}

async function library(source: SnapshotSource): Promise<void> {
  const { snapshot } = await import('../snapshot/snapshot.js');
  const { Guard } = await import('../guard/guard.js');
  const { TaskIterator } = await import('../iter/task-iter.js');
  // Before 5.12 no BPF guard loads: the cursor guard, as `--guard auto` would take.
  const guard = (await import('../host/kernel.js')).bpfGuardKernelGap() ? undefined : Guard.open({ pinned: 'never' });
  let iterator: TaskIterator | undefined;
  try {
    let openNs: number | undefined;
    if (source === 'bpf-iter') {
      const start = nowNs();
      try {
        iterator = TaskIterator.open({ pinned: 'never' });
      } catch (error) {
        if (!(error instanceof PidgenError)) throw error;
        print({ unavailable: `the task iterator does not load here: ${error.message}` });
        return;
      }
      openNs = since(start);
    }
    const options = { guard: guard ?? 'cursor', source: iterator ?? source, threads: true } as const;
    const t0 = nowNs();
    await snapshot(options);
    const firstCallNs = since(t0);
    // The steady state a library user who holds the guard sees: after V8
    // has optimized the hot loops (see LIBRARY_CALLS).
    const calls = LIBRARY_CALLS[source];
    for (let i = 0; i < calls.warmUp; i++) await snapshot(options);
    const timed: number[] = [];
    let result = await snapshot(options);
    for (let i = 0; i < calls.timed; i++) {
      const start = nowNs();
      result = await snapshot(options);
      timed.push(since(start));
    }
    const wallNs = median(timed);
    const profile = startProfile();
    const t2 = nowNs();
    await snapshot(options);
    const profiledNs = since(t2);
    stopProfile();
    print({
      wallNs,
      firstCallNs,
      ...(openNs !== undefined ? { openNs } : {}),
      phases: { ...Object.fromEntries(profile), total: profiledNs },
      ...(iterator ? { kernel: await kernelPass(iterator) } : {}),
      tasks: result.stats.tasks,
      processes: result.processes.length,
      coherent: result.coherent,
      attempts: result.attempts,
      source: result.source,
      attach: guard?.attach ?? 'cursor',
    });
  } catch (error) {
    // UsageError: this pidgen does not offer the source (yet). Anything else
    // pidgen threw on purpose is a failure of the source on this host.
    if (error instanceof UsageError) print({ unavailable: error.message });
    else if (error instanceof PidgenError) print({ failed: error.message });
    else throw error;
  } finally {
    iterator?.close();
    guard?.close();
  }
}

/** `pidgen snapshot --guard bpf --source bpf-iter --format json`, step by step. */
async function cliPhases(): Promise<void> {
  const nodeStartNs = performance.nodeTiming.bootstrapComplete * 1e6;
  const t0 = nowNs();
  // What the CLI loads for a JSON snapshot: its parser and the snapshot path.
  await import('commander');
  const { snapshot } = await import('../snapshot/snapshot.js');
  const { toJSON } = await import('../output/json.js');
  const importNs = since(t0);
  // Loaded already by the snapshot module: before 5.12, the cursor guard.
  const guard = (await import('../host/kernel.js')).bpfGuardKernelGap() ? 'cursor' : 'bpf';
  const profile = startProfile();
  const t1 = nowNs();
  const result = await snapshot({ guard, source: 'bpf-iter', threads: true });
  const snapshotNs = since(t1);
  stopProfile();
  const t2 = nowNs();
  const text = toJSON(result, { pretty: true });
  const outputNs = since(t2);
  print({ nodeStartNs, importNs, snapshotNs, phases: Object.fromEntries(profile), outputNs, bytes: text.length, pinned: result.guard.pinned === true });
}

const mode = process.argv[2];
if (mode === 'cli-phases') await cliPhases();
else if (mode === 'procfs' || mode === 'bpf-iter') await library(mode);
else {
  process.stderr.write(`usage: snapshot-child.js procfs|bpf-iter|cli-phases (got ${String(mode)})\n`);
  process.exitCode = 2;
}
