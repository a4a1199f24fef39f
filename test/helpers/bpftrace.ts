// Whether the bpftrace tests can run here, and the wrapper they run through.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { isRoot } from './kernel.js';

export const wrapper = join(import.meta.dirname, '..', '..', 'scripts', 'pidgen-bt');

const hasBpftrace = spawnSync('bpftrace', ['--version'], { encoding: 'utf8' }).status === 0;

/**
 * The scripts read struct task_struct and struct pid through the kernel's
 * BTF. Debian's bpftrace 0.17 cannot read the BTF of Debian 11's 5.10 ("BTF:
 * failed to find BTF data", seen in a scripts/kernel-test guest), though
 * pidgen's own libbpf loads it there. A front-end run (-d, nothing loaded)
 * of a one-line script that needs BTF tells.
 */
function btfUnreadable(): string | undefined {
  const probe = spawnSync(wrapper, ['-d', '-e', 'BEGIN { printf("%d", ((struct task_struct *)curtask)->pid); exit(); }'], { encoding: 'utf8' });
  const said = probe.stderr.split('\n').find((line) => /BTF: failed to find BTF data/.test(line));
  return said === undefined ? undefined : `bpftrace cannot read this kernel's BTF, which the .bt scripts need for struct task_struct (it says: ${said.replace(/^ERROR: /, '').trim()})`;
}

/** Why the bpftrace tests are skipped here, or undefined when they run. */
export const bpftraceSkipReason: string | undefined = !hasBpftrace
  ? 'bpftrace is not installed (apt-get install bpftrace)'
  : !isRoot
    ? 'bpftrace runs only as root'
    : btfUnreadable();
