// Runs INSIDE a child PID namespace, as its init:
//   unshare -pfm --mount-proc bash -c \
//     'echo 400 > /proc/sys/kernel/pid_max; exec node test/helpers/churn-run.mjs <outdir> <count> <churner> [churner args...]'
// Starts the churner, waits until it is ready, takes <count> snapshots with
// the BPF guard and <count> without (alternating), stops the churner and
// waits for its log. Writes to <outdir>:
//   snapshots.jsonl  one `pidgen.snapshot/1` document per line (toJSON)
//   churn.log        the churner's ground truth
//   meta.json        the churner's ready/summary lines, this process's tasks
// No check happens here: the test judges the snapshots against the log.
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { snapshot } from '../../dist/src/snapshot/snapshot.js';
import { Guard } from '../../dist/src/guard/guard.js';
import { TaskIterator } from '../../dist/src/iter/task-iter.js';
import { toJSON } from '../../dist/src/output/json.js';

const [outdir, countArg, churner, ...churnerArgs] = process.argv.slice(2);
const count = Number(countArg);
if (!outdir || !churner || !Number.isInteger(count) || count < 1) {
  console.error('usage: churn-run.mjs <outdir> <count> <churner> [longlived=N] [threads=T]');
  process.exit(2);
}
// Upper bound only: the churner is stopped (SIGTERM) as soon as the snapshots are done.
const MAX_CHURN_SECONDS = Number(process.env.CHURN_MAX_SECONDS ?? 150);

// Everything that could create a task in this namespace is started before the
// churner: libuv's thread pool (created on first use), the JIT, the guard.
// A task made later that the churner does not log could carry a number the
// log knows, and would be judged against the wrong truth; meta.json lets the
// test verify that our own task set did not change.
await readFile('/proc/self/stat');
const guard = Guard.open();
// Both sources are judged: guarded snapshots alternate between the /proc
// walk and the BPF task iterator (loaded once, like the guard).
const iterator = TaskIterator.open();
await snapshot({ guard, source: 'procfs', threads: true, maxAttempts: 3 });
await snapshot({ guard, source: iterator, threads: true, maxAttempts: 3 });
await snapshot({ guard: 'none', source: 'procfs', threads: true, maxAttempts: 3 });
const ownTasksBefore = readdirSync('/proc/self/task').map(Number).sort((a, b) => a - b);

const logPath = join(outdir, 'churn.log');
const child = spawn(churner, [String(MAX_CHURN_SECONDS), logPath, ...churnerArgs], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const lines = [];
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
const ready = new Promise((resolve, reject) => {
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (line) => {
    lines.push(line);
    if (line.startsWith('ready ')) resolve(line);
  });
  child.on('exit', () => reject(new Error(`churner exited before it was ready: ${lines.join('\n')}`)));
});
const readyLine = await ready;

const docs = [];
const timings = { bpfMs: [], noneMs: [] };
let churnStoppedEarly = false;
for (let i = 0; i < count; i++) {
  for (const choice of ['bpf', 'none']) {
    const t0 = performance.now();
    const snap =
      choice === 'bpf'
        ? await snapshot({ guard, source: i % 2 === 0 ? 'procfs' : iterator, threads: true, maxAttempts: 3 })
        : await snapshot({ guard: 'none', source: 'procfs', threads: true, maxAttempts: 3 });
    (choice === 'bpf' ? timings.bpfMs : timings.noneMs).push(performance.now() - t0);
    docs.push(toJSON(snap));
  }
  if (child.exitCode !== null) churnStoppedEarly = true;
}
const ownTasksAfter = readdirSync('/proc/self/task').map(Number).sort((a, b) => a - b);

process.kill(child.pid, 'SIGTERM');
const { code, signal } = await exited;
guard.close();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
writeFileSync(join(outdir, 'snapshots.jsonl'), docs.join(''));
writeFileSync(
  join(outdir, 'meta.json'),
  JSON.stringify(
    {
      churnerPid: child.pid,
      churnerExit: { code, signal },
      ready: readyLine,
      summary: lines.find((l) => l.startsWith('summary ')) ?? null,
      churnStoppedEarly,
      ownPid: process.pid,
      ownTasksBefore,
      ownTasksAfter,
      snapshotMedianMs: { bpf: median(timings.bpfMs), none: median(timings.noneMs) },
    },
    null,
    2,
  ) + '\n',
);
process.exit(code === 0 ? 0 : 1);
