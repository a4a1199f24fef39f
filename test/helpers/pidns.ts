// Forced PID rollovers inside child PID namespaces (unshare -pfm), so the
// host's pid_max and ns_last_pid are never touched. Since 6.14 pid_max is per
// namespace, so a small one inside makes real wraps cheap. Before 6.14 the
// same write sets the one global pid_max, which only a throwaway guest
// (scripts/kernel-test) may do: see withSmallPidMax.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { TestContext } from 'vitest';
import { kernelAtLeast, kernelVersion } from '../../src/host/kernel.js';
import { inThrowawayGuest } from './kernel.js';
import { slow } from './slow.js';

/** What a fork loop saw of one namespace's PID numbers. */
export interface Observed {
  /** Times the number went down from one fork to the next. */
  wraps: number;
  first: number;
  last: number;
}

/**
 * Bash that forks /bin/true N times and reads ns_last_pid after each fork,
 * with builtins only, so every allocation between two reads is the fork's.
 * Prints `<label> wraps=W first=F last=L`.
 */
export function forkLoopScript(label: string, forks: number): string {
  return `
read prev < /proc/sys/kernel/ns_last_pid; first=$prev; wraps=0
for ((i=0;i<${forks};i++)); do
  /bin/true
  read cur < /proc/sys/kernel/ns_last_pid
  if (( cur < prev )); then wraps=$((wraps+1)); fi
  prev=$cur
done
echo "${label} wraps=$wraps first=$first last=$prev"
`;
}

/**
 * Like forkLoopScript, but for a task two namespaces deep: each forked child
 * is `readlink /proc/self <outerProc>/self`, which prints the one new task's
 * number in its own namespace and in the parent namespace (whose procfs is
 * mounted at outerProc). ns_last_pid cannot serve for the parent: sysctls
 * answer for the reader's own namespace whatever procfs they are read through.
 * Prints `<label>_inner ...` and `<label>_outer ...` lines.
 */
export function nestedForkLoopScript(label: string, forks: number, outerProc: string): string {
  return `
iwraps=0; owraps=0; iprev=; oprev=
for ((i=0;i<${forks};i++)); do
  out=$(readlink /proc/self ${outerProc}/self)
  icur=\${out%%$'\\n'*}; ocur=\${out##*$'\\n'}
  if [[ -z $iprev ]]; then ifirst=$icur; ofirst=$ocur;
  else
    if (( icur < iprev )); then iwraps=$((iwraps+1)); fi
    if (( ocur < oprev )); then owraps=$((owraps+1)); fi
  fi
  iprev=$icur; oprev=$ocur
done
echo "${label}_inner wraps=$iwraps first=$ifirst last=$iprev"
echo "${label}_outer wraps=$owraps first=$ofirst last=$oprev"
`;
}

/** Runs a bash script as PID 1 of a new PID (and mount) namespace. */
export function runInChildPidNs(script: string): string {
  const result = spawnSync('unshare', ['-pfm', '--mount-proc', 'bash', '-euc', script], {
    encoding: 'utf8',
    timeout: slow(300_000),
  });
  if (result.status !== 0) {
    throw new Error(`unshare run failed (status ${result.status}, signal ${result.signal}): ${result.stderr}`);
  }
  return result.stdout;
}

/** Bash that prints `<label>=<inum>` for the namespace it runs in. */
export function printNsScript(label: string): string {
  return `echo "${label}=$(stat -L -c %i /proc/self/ns/pid)"\n`;
}

export function parseNs(stdout: string, label: string): number {
  const m = new RegExp(`^${label}=(\\d+)$`, 'm').exec(stdout);
  if (!m) throw new Error(`no '${label}=' line in: ${stdout}`);
  return Number(m[1]);
}

export function parseObserved(stdout: string, label: string): Observed {
  const m = new RegExp(`^${label} wraps=(\\d+) first=(\\d+) last=(\\d+)$`, 'm').exec(stdout);
  if (!m) throw new Error(`no '${label} wraps=' line in: ${stdout}`);
  return { wraps: Number(m[1]), first: Number(m[2]), last: Number(m[3]) };
}

/**
 * Wraps across consecutive phases of one namespace: those inside each phase,
 * plus one for each gap where the number went down between phases (a gap is
 * a few allocations, far fewer than a whole cycle).
 */
export function totalWraps(phases: readonly Observed[]): number {
  let total = 0;
  phases.forEach((phase, i) => {
    total += phase.wraps;
    const before = phases[i - 1];
    if (before && phase.first < before.last) total += 1;
  });
  return total;
}

/**
 * How a child namespace gets a small pid_max on this kernel:
 * - `namespace`: Linux >= 6.14, where pid_max is per PID namespace
 *   (7863dcc72d0f "pid: allow pid_max to be set per pid namespace"); the
 *   host's is never touched.
 * - `global`: an older kernel in a throwaway guest (scripts/kernel-test puts
 *   `pidgen.throwaway_guest=1` on the guest's kernel command line). The
 *   write inside the child lowers the guest's one global pid_max, so the root
 *   namespace wraps too; withSmallPidMax restores it afterwards.
 * - `none`: an older kernel on a real host; such tests skip, with `reason`.
 */
export const smallPidMax: { how: 'namespace' | 'global' | 'none'; reason: string } = (() => {
  if (kernelAtLeast(kernelVersion(), 6, 14)) return { how: 'namespace', reason: '' };
  if (inThrowawayGuest) return { how: 'global', reason: '' };
  return {
    how: 'none',
    reason:
      'needs per-namespace pid_max (Linux >= 6.14) to force rollovers without touching the host; ' +
      'on older kernels run it in a throwaway guest: scripts/kernel-test <kernel> -- npm test',
  };
})();

const PID_MAX = '/proc/sys/kernel/pid_max';

/**
 * Runs a test body whose child namespace writes a small pid_max, where this
 * kernel allows one (see smallPidMax): skips with the reason where it does
 * not, and in a throwaway guest puts the global pid_max back afterwards.
 */
export async function withSmallPidMax<T>(ctx: TestContext, body: () => T | Promise<T>): Promise<T | undefined> {
  if (smallPidMax.how === 'none') {
    ctx.skip(smallPidMax.reason);
    return undefined;
  }
  return restoringPidMax(body);
}

/**
 * withSmallPidMax for a hook, which has no test context to skip with: the
 * caller skips its tests with smallPidMax.reason where smallPidMax.how is
 * 'none', and this refuses to run the body there.
 */
export async function restoringPidMax<T>(body: () => T | Promise<T>): Promise<T> {
  if (smallPidMax.how === 'none') throw new Error(`refusing to lower pid_max here: ${smallPidMax.reason}`);
  if (smallPidMax.how === 'namespace') return body();
  const saved = readFileSync(PID_MAX, 'utf8').trim();
  try {
    return await body();
  } finally {
    writeFileSync(PID_MAX, saved);
  }
}
