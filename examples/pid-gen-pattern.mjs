#!/usr/bin/env node
// The /proc/pid_gen pattern, done right: bracket your own /proc scan with the
// guard's allocation log, and rescan when a number your scan saw was handed
// to a new task meanwhile. Run as root:
//
//   node examples/pid-gen-pattern.mjs
//
// Why not the generation alone: an unchanged generation means no number was
// allocated twice during the scan, but a number from before the last wrap,
// whose task dies mid-scan, can be handed out again without a new wrap. The
// log names every number handed out, so it rules that out too.
//
// What this example still leaves to pidgen's snapshot(): threads, repairing
// only the entries touched instead of rescanning, and the window end (a task
// created in the last microseconds of the scan is logged a moment later; see
// the README, "what coherent means").
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
guard.beginAllocationLog();
try {
  process.exitCode = 3; // numbers kept changing hands
  for (let attempt = 1; attempt <= 5; attempt++) {
    guard.drainAllocationLog(); // the window starts now: older records do not count
    const drops = guard.health().logDrops;
    const names = scan();
    const taken = guard.drainAllocationLog().filter((e) => e.kind === 'new' && e.inum === guard.namespace);
    if (guard.health().logDrops !== drops) {
      console.error('the allocation log overflowed during the scan: rescanning');
      continue;
    }
    const touched = taken.map((e) => e.nr).filter((nr) => names.has(nr));
    if (touched.length === 0) {
      console.log(JSON.stringify({ attach: guard.attach, attempts: attempt, processes: names.size, allocations: taken.length }));
      process.exitCode = 0;
      break;
    }
    console.error(`PIDs ${touched.join(', ')} went to new tasks during the scan: rescanning`);
  }
} finally {
  guard.endAllocationLog();
  guard.close();
}
