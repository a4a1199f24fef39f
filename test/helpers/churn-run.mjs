// Runs INSIDE a child PID namespace, as its init, under the BPF recorder:
//   recorder LOG SUMMARY -- sh -c 'echo 400 > /proc/sys/kernel/pid_max && exec "$@"' churn \
//     node test/helpers/churn-run.mjs <outdir> <churner> [churner args...]
// Starts the churner, waits until it is ready, then takes snapshots the ways
// a user does, in phases, while the churner forks and its threads come and go:
//   library  in-process: snapshot({ guard, source }) with one Guard and one
//            TaskIterator held for the whole phase, thousands of short
//            windows, procfs and bpf-iter interleaved (CHURN_LIBRARY_PROCFS,
//            CHURN_LIBRARY_BPF_ITER); every CHURN_NONE_EVERY-th one also an
//            unguarded (guard none) one;
//   cli      `pidgen snapshot --format json` as separate processes, both
//            sources, and `--guard none` now and then;
//   cursor   the unprivileged cursor guard, as nobody (setpriv), procfs.
// Then it stops the churner and waits for its log. Writes to <outdir>:
//   snapshots.jsonl  {"path": "library"|"cli"|"cursor", "snapshot": <pidgen.snapshot JSON>}
//                    per line (argv dropped: nothing judges it, and it is most of the bytes)
//   churn.log        the churner's own ground truth (the second view)
//   meta.json        the churner's ready/summary lines, phase timings
// No check happens here: the test judges the snapshots against the recorder.
//
// With --cursor-child <count> it is the cursor phase's unprivileged child:
// it prints one snapshot JSON per line and exits.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as pidgen from '../../dist/src/index.js';

const root = join(import.meta.dirname, '..', '..');
const CLI = join(root, 'dist', 'src', 'cli', 'main.js');
const count = (name, fallback) => Number(process.env[name] ?? fallback);

if (process.argv[2] === '--cursor-child') {
  const n = Number(process.argv[3]);
  for (let i = 0; i < n; i++) {
    const snap = await pidgen.snapshot({ guard: 'cursor', source: 'procfs', threads: true, maxAttempts: 3 });
    process.stdout.write(pidgen.toJSON(snap));
  }
  process.exit(0);
}

const [outdir, churner, ...churnerArgs] = process.argv.slice(2);
if (!outdir || !churner) {
  console.error('usage: churn-run.mjs <outdir> <churner> [churner args...]');
  process.exit(2);
}
const LIBRARY_PROCFS = count('CHURN_LIBRARY_PROCFS', 2000);
const LIBRARY_BPF_ITER = count('CHURN_LIBRARY_BPF_ITER', 3000);
const NONE_EVERY = count('CHURN_NONE_EVERY', 10);
const CLI_PER_SOURCE = count('CHURN_CLI_PER_SOURCE', 40);
const CLI_NONE = count('CHURN_CLI_NONE', 10);
const CURSOR = count('CHURN_CURSOR', 400);
// Upper bound only: the churner is stopped (SIGTERM) as soon as the snapshots are done.
const MAX_CHURN_SECONDS = count('CHURN_MAX_SECONDS', 400);

/**
 * The task iterator, held across snapshots. The public API's; while the
 * package does not export it, the built module it lives in.
 */
async function taskIteratorClass() {
  if (pidgen.TaskIterator) return pidgen.TaskIterator;
  for (const path of ['../../dist/src/iter/task-iter.js', '../../dist/src/source/bpf-iter.js', '../../dist/src/sources/bpf-iter.js']) {
    try {
      const module = await import(path);
      if (module.TaskIterator) return module.TaskIterator;
    } catch {
      // not there: try the next
    }
  }
  throw new Error('TaskIterator: not exported by pidgen, and not found in dist/src/iter/task-iter.js either');
}

const TaskIterator = await taskIteratorClass();
const guard = pidgen.Guard.open({ pinned: 'never' });
const iterator = TaskIterator.open({ pinned: 'never' });
const options = { threads: true, maxAttempts: 3 };
await pidgen.snapshot({ guard, source: 'procfs', ...options });
await pidgen.snapshot({ guard, source: iterator, ...options });
await pidgen.snapshot({ guard: 'none', source: 'procfs', ...options });

const child = spawn(churner, [String(MAX_CHURN_SECONDS), join(outdir, 'churn.log'), ...churnerArgs], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const lines = [];
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
const readyLine = await new Promise((resolve, reject) => {
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (line) => {
    lines.push(line);
    if (line.startsWith('ready ')) resolve(line);
  });
  child.on('exit', () => reject(new Error(`churner exited before it was ready: ${lines.join('\n')}`)));
});

const docs = [];
const phases = {};
const time = async (name, body) => {
  const t0 = performance.now();
  const n0 = docs.length;
  await body();
  phases[name] = { snapshots: docs.length - n0, ms: Math.round(performance.now() - t0) };
};
let churnStoppedEarly = false;

await time('library', async () => {
  // The two sources interleaved, in proportion, so both see the same churn.
  const total = LIBRARY_PROCFS + LIBRARY_BPF_ITER;
  for (let i = 0; i < total; i++) {
    const procfs = Math.floor(((i + 1) * LIBRARY_PROCFS) / total) > Math.floor((i * LIBRARY_PROCFS) / total);
    const source = procfs ? 'procfs' : iterator;
    docs.push({ path: 'library', json: pidgen.toJSON(await pidgen.snapshot({ guard, source, ...options })) });
    if (i % NONE_EVERY === 0) {
      docs.push({ path: 'library', json: pidgen.toJSON(await pidgen.snapshot({ guard: 'none', source: 'procfs', ...options })) });
    }
    if (child.exitCode !== null) churnStoppedEarly = true;
  }
});
guard.close();
iterator.close();

await time('cli', async () => {
  const runs = [];
  for (let i = 0; i < CLI_PER_SOURCE; i++) runs.push(['bpf', 'procfs'], ['bpf', 'bpf-iter']);
  for (let i = 0; i < CLI_NONE; i++) runs.splice(Math.floor((i * runs.length) / CLI_NONE), 0, ['none', 'procfs']);
  for (const [guardKind, source] of runs) {
    const result = spawnSync(
      process.execPath,
      [CLI, 'snapshot', '--format', 'json', '--guard', guardKind, '--source', source, '--max-attempts', '3'],
      { encoding: 'utf8', maxBuffer: 256 << 20 },
    );
    if (result.status !== 0) throw new Error(`pidgen snapshot --guard ${guardKind} --source ${source} failed (${result.status}): ${result.stderr}`);
    docs.push({ path: 'cli', json: result.stdout });
  }
  if (child.exitCode !== null) churnStoppedEarly = true;
});

await time('cursor', async () => {
  const result = spawnSync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, join(import.meta.dirname, 'churn-run.mjs'), '--cursor-child', String(CURSOR)],
    { encoding: 'utf8', maxBuffer: 1 << 30 },
  );
  if (result.status !== 0) throw new Error(`cursor snapshots as nobody failed (${result.status}): ${result.stderr}`);
  for (const line of result.stdout.split('\n')) if (line) docs.push({ path: 'cursor', json: line });
  if (child.exitCode !== null) churnStoppedEarly = true;
});

process.kill(child.pid, 'SIGTERM');
const { code, signal } = await exited;

const out = docs.map(({ path, json }) => {
  const snapshot = JSON.parse(json);
  for (const p of snapshot.processes) delete p.cmdline;
  return JSON.stringify({ path, snapshot }) + '\n';
});
writeFileSync(join(outdir, 'snapshots.jsonl'), out.join(''));
writeFileSync(
  join(outdir, 'meta.json'),
  JSON.stringify(
    {
      churnerPid: child.pid,
      churnerExit: { code, signal },
      ready: readyLine,
      summary: lines.find((l) => l.startsWith('summary ')) ?? null,
      churnStoppedEarly,
      phases,
    },
    null,
    2,
  ) + '\n',
);
process.exit(code === 0 ? 0 : 1);
