// Runs as PID 1's child in a quiet child PID namespace holding a known tree
// (see source-parity.test.ts). Takes one snapshot with each source and
// prints both as JSON, with the PID of this process so it can be set aside
// (its own threads come and go).
import { snapshot } from '../../dist/src/snapshot/snapshot.js';
import { toJSONObject } from '../../dist/src/output/json.js';
import { bpfGuardKernelGap } from '../../dist/src/host/kernel.js';

// The sources are under test, not the guard: the cursor guard where the BPF
// guard cannot load (Linux < 5.12).
const guard = bpfGuardKernelGap() ? 'cursor' : 'bpf';
const iter = await snapshot({ source: 'bpf-iter', guard });
const procfs = await snapshot({ source: 'procfs', guard });
console.log(JSON.stringify({ self: process.pid, iter: toJSONObject(iter), procfs: toJSONObject(procfs) }));
