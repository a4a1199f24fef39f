// Runs as PID 1 of a child PID namespace. Takes a snapshot and, between the
// walk and the checkpoint, kills a process the walk saw and hands its PID to
// a new process (by writing ns_last_pid in this namespace, never the host's).
// Prints what happened and the snapshot as one JSON line (then, with
// REUSE_HOLD=1 in the environment, waits for stdin to end before it exits).
//
//   reuse-during-snapshot.mjs <maxAttempts> [withhold-new | withhold-both]
//
// withhold-new: the window-end race on purpose. The new task's task_newtask
// record is held back from every drain, as if it landed after the last one
// (in the kernel it can: copy_process() sets start_boottime, makes the task
// visible, and fires task_newtask last). withhold-both also holds back the
// old task's exit record, which the kernel writes before the PID is freed:
// that cannot happen, and shows what the exit record is for.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { installSnapshotHooks } from '../../dist/src/snapshot/hooks.js';
import { snapshot } from '../../dist/src/snapshot/snapshot.js';
import { toJSONObject } from '../../dist/src/output/json.js';

const maxAttempts = Number(process.argv[2] ?? 3);
const withhold = process.argv[3];
const startOf = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};

const old = spawn('sleep', ['1000'], { stdio: 'ignore' });
await once(old, 'spawn');
let fresh;
installSnapshotHooks({
  withholdRecord: (event) =>
    event.nr === old.pid && ((withhold === 'withhold-new' && event.kind === 'new') || withhold === 'withhold-both'),
  afterFirstWalk: async () => {
    const exited = once(old, 'exit');
    old.kill('SIGKILL');
    await exited;
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(old.pid - 1));
    fresh = spawn('sleep', ['1000'], { stdio: 'ignore' });
    await once(fresh, 'spawn');
  },
});
const result = await snapshot({ guard: 'bpf', maxAttempts });
const report = {
  oldPid: old.pid,
  freshPid: fresh.pid,
  freshStartTicks: startOf(fresh.pid),
  snapshot: toJSONObject(result),
};
console.log(JSON.stringify(report));
// REUSE_HOLD=1: keep every task alive until stdin ends, so the caller can
// map the namespace's numbers to root-namespace ones from the host's /proc.
if (process.env.REUSE_HOLD === '1') {
  process.stdin.resume();
  await once(process.stdin, 'end');
}
fresh.kill('SIGKILL');
