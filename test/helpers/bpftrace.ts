// Whether the bpftrace tests can run here, and the wrapper they run through.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { isRoot } from './kernel.js';

export const wrapper = join(import.meta.dirname, '..', '..', 'scripts', 'pidgen-bt');

const hasBpftrace = spawnSync('bpftrace', ['--version'], { encoding: 'utf8' }).status === 0;

/** Why the bpftrace tests are skipped here, or undefined when they run. */
export const bpftraceSkipReason: string | undefined = !hasBpftrace
  ? 'bpftrace is not installed (apt-get install bpftrace)'
  : !isRoot
    ? 'bpftrace runs only as root'
    : undefined;
