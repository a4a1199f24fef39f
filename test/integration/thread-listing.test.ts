// A process's threads, read while other threads of it exit, are all there.
// Listing /proc/<pid>/task can skip live threads when the thread the listing
// stands on exits (native/proc_reader.cc has the kernel's why); a snapshot
// must still list every thread that lived through its read. Needs no root:
// the process is the test's own child.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readProcessEntries } from '../../src/source/procfs.js';
import { slow } from '../helpers/slow.js';

const PAIRS = 300;
const ROUNDS = 40;

describe('[kernel] thread listing while threads exit', () => {
  let work: string;
  let helper: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'pidgen-threads-'));
    helper = join(work, 'thread-pairs');
    execFileSync('cc', ['-O2', '-pthread', '-o', helper, join(import.meta.dirname, '..', 'helpers', 'thread-pairs.c')], { stdio: 'inherit' });
  });

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(`no read misses a live thread while ${PAIRS} of its neighbours exit at once, ${ROUNDS} times`, async () => {
    const child = spawn(helper, [String(PAIRS), String(ROUNDS)], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const staying: number[] = [];
      const misses: string[] = [];
      let reads = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const ready = (await lines.next()).value as string;
        const [word, pid, ...tids] = ready.split(' ');
        expect(word).toBe('ready');
        staying.push(...tids.map(Number));
        child.stdin.write('go\n');
        let done = false;
        void lines.next().then(() => (done = true));
        while (!done) {
          const [entry] = readProcessEntries('/proc', [Number(pid)], { threads: true, pidfd: false });
          reads++;
          const listed = new Set(entry?.threads.map((t) => t.tid));
          const missing = staying.filter((tid) => !listed.has(tid));
          if (missing.length > 0) misses.push(`round ${round}: ${missing.length} live thread(s) missing, e.g. ${missing.slice(0, 3).join(' ')}`);
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      console.log(`[kernel] thread listing: ${reads} reads during ${ROUNDS} bursts of ${PAIRS} thread exits, ${misses.length} missed a live thread`);
      expect(reads).toBeGreaterThanOrEqual(ROUNDS);
      expect(misses).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
  }, slow(120_000));
});
