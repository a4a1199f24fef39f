/**
 * One in-library measurement for `pidgen bench`, in a fresh Node process so
 * its peak RSS is pidgen's alone.
 *
 * Usage: node snapshot-child.js SOURCE
 *
 * Opens the BPF guard and, for bpf-iter, the task iterator (untimed: a
 * library user holds one Guard and one TaskIterator across snapshots; the
 * CLI row of the bench pays the loads), then calls snapshot() twice with
 * threads and cmdline: the first call pays V8's cold start on pidgen's
 * parsers, the second is the steady state the bench reports. Prints one
 * JSON line:
 *   {"wallNs", "firstCallNs", "openNs", "tasks", "processes", "coherent", "attempts", "source", "attach"}
 * (openNs: loading the iterator, which snapshot({ source: 'bpf-iter' })
 * without a held TaskIterator pays on every call), or {"unavailable":
 * "<why>"} when the source cannot be used here, or {"failed": "<why>"} when
 * the snapshot threw.
 */
import { PidgenError, UsageError } from '../errors.js';
import { Guard } from '../guard/guard.js';
import { TaskIterator } from '../iter/task-iter.js';
import { snapshot } from '../snapshot/snapshot.js';
import type { SnapshotSource } from '../model/snapshot.js';

function print(report: object): void {
  process.stdout.write(JSON.stringify(report) + '\n');
}

async function main(): Promise<void> {
  const source = process.argv[2] as SnapshotSource | undefined;
  if (source !== 'procfs' && source !== 'bpf-iter') {
    process.stderr.write(`usage: snapshot-child.js procfs|bpf-iter (got ${String(source)})\n`);
    process.exitCode = 2;
    return;
  }
  const guard = Guard.open({ pinned: 'never' });
  let iterator: TaskIterator | undefined;
  try {
    let openNs: number | undefined;
    if (source === 'bpf-iter') {
      const start = process.hrtime.bigint();
      try {
        iterator = TaskIterator.open();
      } catch (error) {
        if (!(error instanceof PidgenError)) throw error;
        print({ unavailable: `the task iterator does not load here: ${error.message}` });
        return;
      }
      openNs = Number(process.hrtime.bigint() - start);
    }
    const options = { guard, source: iterator ?? source, threads: true } as const;
    const t0 = process.hrtime.bigint();
    await snapshot(options);
    const t1 = process.hrtime.bigint();
    const result = await snapshot(options);
    const t2 = process.hrtime.bigint();
    print({
      wallNs: Number(t2 - t1),
      firstCallNs: Number(t1 - t0),
      ...(openNs !== undefined ? { openNs } : {}),
      tasks: result.stats.tasks,
      processes: result.processes.length,
      coherent: result.coherent,
      attempts: result.attempts,
      source: result.source,
      attach: guard.attach,
    });
  } catch (error) {
    // UsageError: this pidgen does not offer the source (yet). Anything else
    // pidgen threw on purpose is a failure of the source on this host.
    if (error instanceof UsageError) print({ unavailable: error.message });
    else if (error instanceof PidgenError) print({ failed: error.message });
    else throw error;
  } finally {
    iterator?.close();
    guard.close();
  }
}

await main();
