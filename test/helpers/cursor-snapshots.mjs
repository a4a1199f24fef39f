// Takes at least N snapshots, for at least MS milliseconds, with the guard
// `auto` picks for whoever runs it (the cursor guard for an unprivileged
// user), and prints one JSON line each.
import { snapshot } from '../../dist/src/snapshot/snapshot.js';

const count = Number(process.argv[2] ?? 50);
const minMs = Number(process.argv[3] ?? 0);
const started = Date.now();
for (let i = 0; i < count || Date.now() - started < minMs; i++) {
  const snap = await snapshot({ guard: 'auto', threads: true });
  console.log(
    JSON.stringify({
      guard: snap.guard.kind,
      coherent: snap.coherent,
      attempts: snap.attempts,
      reason: snap.reason ?? null,
      startNs: snap.window.startNs.toString(),
      endNs: snap.window.endNs.toString(),
      processes: snap.processes.length,
    }),
  );
}
