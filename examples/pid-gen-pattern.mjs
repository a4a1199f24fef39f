#!/usr/bin/env node
// The /proc/pid_gen pattern: bracket your own /proc scan with the generation
// counter, and rescan when it moved. Run as root:
//
//   node examples/pid-gen-pattern.mjs
//
// The counter catches wraps (a PID number handed out again after the
// allocator went round). For a scan that must also survive reuse of numbers
// from before the last wrap, use pidgen's snapshot(), which checks an exact
// allocation log instead (see the README, "what coherent means").
import { readdirSync, readFileSync } from 'node:fs';
import { Guard } from 'pidgen';

// Your scan: here, each process's name, read the simple way.
function scan() {
  const names = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      names.set(Number(entry), readFileSync(`/proc/${entry}/comm`, 'utf8').trim());
    } catch {
      // Gone since readdir: normal.
    }
  }
  return names;
}

// In TypeScript, `using guard = Guard.open()` closes it at the end of scope.
const guard = Guard.open();
try {
  for (let attempt = 1; attempt <= 5; attempt++) {
    const before = guard.generation();
    const names = scan();
    const after = guard.generation();
    if (after === before) {
      console.log(
        JSON.stringify({ attach: guard.attach, generation: after.toString(), attempts: attempt, processes: names.size }),
      );
      process.exitCode = 0;
      break;
    }
    console.error(`generation moved ${before} -> ${after} during the scan: rescanning`);
    process.exitCode = 3; // PIDs kept wrapping
  }
} finally {
  guard.close();
}
