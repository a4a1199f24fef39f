// The two ground truths side by side: the BPF recorder (kernel times) and
// the churner's own log (userspace bounds around fork() and waitpid()). They
// owe nothing to each other, so where they disagree, one of them is wrong.
import type { ChurnTruth, LoggedTask, Violation } from '../helpers/ground-truth.js';
import type { Category, ExactViolation } from './check.js';
import type { RecordedTask, RecorderLog } from './log.js';

const ANY_NAME = '-';

/** Holders (in start order) with from <= startNs <= to. */
function startedBetween(holders: readonly RecordedTask[], from: bigint, to: bigint): RecordedTask[] {
  let lo = 0;
  let hi = holders.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (holders[mid]!.startNs < from) lo = mid + 1;
    else hi = mid;
  }
  const out: RecordedTask[] = [];
  for (let i = lo; i < holders.length && holders[i]!.startNs <= to; i++) out.push(holders[i]!);
  return out;
}

/** A churner task the recorder does not confirm, and why. */
export interface TaskDisagreement {
  task: LoggedTask;
  message: string;
}

/**
 * Every task the churner logged must be a task the recorder saw: same
 * number and thread group, start_boottime inside the fork bounds, the name
 * it was born with, and a release bracket that meets the reap bounds (the
 * real release is inside both).
 */
export function compareTasks(truth: ChurnTruth, log: RecorderLog): { matched: number; disagreements: TaskDisagreement[] } {
  const disagreements: TaskDisagreement[] = [];
  let matched = 0;
  for (const task of truth.tasks) {
    const holders = log.byNumber.get(task.pid) ?? [];
    const group = (t: RecordedTask) => (task.kind === 'thread' ? !t.leader && t.tgid === task.tgid : t.leader);
    const born = startedBetween(holders, task.forkBeforeNs, task.forkAfterNs).filter(group);
    if (born.length !== 1) {
      disagreements.push({
        task,
        message: `${born.length} recorded tasks numbered ${task.pid} in that group started inside the fork bounds (holders started at ${holders.map((t) => t.startNs).join(', ') || 'never'})`,
      });
      continue;
    }
    const rec = born[0]!;
    if (task.name !== ANY_NAME && rec.birthComm !== task.name) {
      disagreements.push({ task, message: `born as ${JSON.stringify(rec.birthComm)} per the recorder` });
      continue;
    }
    if (task.reapBeforeNs !== null && task.reapAfterNs !== null) {
      if (rec.release.loNs > task.reapAfterNs || rec.release.hiNs < task.reapBeforeNs) {
        disagreements.push({
          task,
          message: `released in [${rec.release.loNs}, ${rec.release.hiNs}] per the recorder, outside the reap bounds`,
        });
        continue;
      }
    }
    matched++;
  }
  return { matched, disagreements };
}

/** Which recorder categories a churner-log property corresponds to. */
const SAME_RULE: Record<Violation['property'], readonly Category[]> = {
  P1: ['identity', 'stale'],
  P2: ['reuse', 'stale'],
  P3: ['completeness'],
};

const numberOf = (v: { pid: number; tid?: number }): number => v.tid ?? v.pid;

/**
 * Violations the churner's log finds in one snapshot that the recorder does
 * not (same number, same rule). The churner's log counts only what its
 * bounds surely decide, so each of its violations must be one the recorder
 * finds too; the recorder finds more (it decides what the bounds cannot).
 */
export function unconfirmed(churnerView: readonly Violation[], recorderView: readonly ExactViolation[]): Violation[] {
  return churnerView.filter(
    (v) => !recorderView.some((r) => SAME_RULE[v.property].includes(r.category) && (numberOf(r) === numberOf(v) || r.pid === v.pid)),
  );
}
