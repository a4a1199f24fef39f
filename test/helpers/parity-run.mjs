// Runs as PID 1's child in a quiet child PID namespace holding a known tree
// (see source-parity.test.ts). Takes one snapshot with each source and
// prints both as JSON, with the PID of this process so it can be set aside
// (its own threads come and go).
import { snapshot } from '../../dist/src/snapshot/snapshot.js';
import { toJSONObject } from '../../dist/src/output/json.js';

const iter = await snapshot({ source: 'bpf-iter', guard: 'bpf' });
const procfs = await snapshot({ source: 'procfs', guard: 'bpf' });
console.log(JSON.stringify({ self: process.pid, iter: toJSONObject(iter), procfs: toJSONObject(procfs) }));
