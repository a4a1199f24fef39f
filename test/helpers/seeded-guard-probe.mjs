// Runs inside a child PID namespace whose cursor is near its wrap: opens a
// guard (seeding the namespace from ns_last_pid), forks until the numbers
// wrap, and prints what the guard and the forks saw as one JSON line.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Guard } from '../../dist/src/guard/guard.js';

const lastPid = () => Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
const guard = Guard.open();
const counter = guard.counter();
spawnSync('/bin/true');
const generationAfterOneFork = guard.generation();

// Node's own threads allocate numbers too; every wrap still shows as a
// decrease between two reads, since each gap is far shorter than a cycle.
let wraps = 0;
let prev = lastPid();
for (let i = 0; i < 150; i++) {
  spawnSync('/bin/true');
  const cur = lastPid();
  if (cur < prev) wraps++;
  prev = cur;
}
const generation = guard.generation();
guard.close();
console.log(
  JSON.stringify({
    seeded: counter?.seeded ?? false,
    firstSeenLate: counter?.firstSeenLate ?? true,
    seededLastNr: guard.seededLastNr ?? -1,
    generationAfterOneFork: generationAfterOneFork.toString(),
    wraps,
    generation: generation.toString(),
  }),
);
