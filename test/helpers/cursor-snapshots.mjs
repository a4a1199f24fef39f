// Takes at least N snapshots, for at least MS milliseconds, and with a third
// argument `stdin` until its stdin ends too, with the guard `auto` picks for
// whoever runs it (the cursor guard for an unprivileged user), and prints one
// JSON line each.
import { snapshot } from '../../dist/src/snapshot/snapshot.js';

const count = Number(process.argv[2] ?? 50);
const minMs = Number(process.argv[3] ?? 0);
let held = process.argv[4] === 'stdin';
if (held) {
  process.stdin.resume();
  process.stdin.on('end', () => (held = false));
}
const started = Date.now();
for (let i = 0; i < count || Date.now() - started < minMs || held; i++) {
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
