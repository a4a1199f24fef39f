#!/usr/bin/env node
// Add a process baseline to a Perfetto trace you already recorded, so
// trace_processor and the Perfetto UI know every process and thread that
// existed, even those that never ran during the trace. Run as root:
//
//   node examples/append-baseline.mjs trace.pftrace
//
// The file is rewritten atomically. The recording's own packets are kept
// byte for byte; pidgen's go right after the recording's first ClockSnapshot,
// so the recording still sets the trace clock, and ahead of everything else
// (trace_processor sorts by timestamp, and packets that come late but are
// stamped early can be dropped).
import { readFileSync } from 'node:fs';
import { appendPerfetto, snapshot, writeFileAtomic } from 'pidgen';

const file = process.argv[2];
if (!file) {
  console.error('usage: node examples/append-baseline.mjs TRACE_FILE');
  process.exit(2);
}
const recorded = readFileSync(file);
const baseline = await snapshot({ guard: 'auto' });
if (!baseline.coherent) console.error(`note: baseline not coherent: ${baseline.reason}`);
await writeFileAtomic(file, appendPerfetto(recorded, baseline));
console.log(
  JSON.stringify({
    file,
    processes: baseline.processes.length,
    reused: baseline.reused.length,
    coherent: baseline.coherent,
    bytesBefore: recorded.length,
  }),
);
