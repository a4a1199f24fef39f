/** `pidgen doctor`: what this host supports, with one line of advice per failed check. */
import { runDoctor } from '../../doctor/checks.js';

const MARK = { ok: 'ok', fail: 'FAIL', warn: 'warn', info: '--' } as const;

/**
 * Returns false only when pidgen cannot take a snapshot here at all (the
 * native addon does not load); a host without BPF still has the cursor guard.
 */
export function runDoctorCommand(options: { json?: boolean; verbose?: boolean }, out: (text: string) => void): boolean {
  const report = runDoctor({ verbose: options.verbose ?? false });
  if (options.json) {
    out(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const width = Math.max(...report.checks.map((c) => c.name.length));
    for (const c of report.checks) {
      out(`${MARK[c.status].padEnd(4)}  ${c.name.padEnd(width)}  ${c.detail}\n`);
      if (c.advice) out(`${''.padEnd(4)}  ${''.padEnd(width)}  advice: ${c.advice}\n`);
    }
    out(
      report.guard.kind === 'bpf'
        ? `\nguard: bpf via ${report.guard.attach}${report.guard.pinned ? ' (pinned)' : ''}\n`
        : `\nguard: cursor (no BPF guard can be loaded here: ${report.guard.reason})\n`,
    );
    out(
      report.source.kind === 'bpf-iter'
        ? `source: bpf-iter (argv from ${report.source.cmdlineFrom})\n`
        : `source: procfs (${report.source.reason})\n`,
    );
  }
  return report.checks.find((c) => c.name === 'native addon')?.status === 'ok';
}
