// The bpftrace scripts (bpf/*.bt) for operators without Node, checked the
// way bpftrace's own test suite checks tools/*.bt: compiled, not run.
//
// bpftrace 0.17 has no --dry-run. Its -d ("dry run debug info") runs the
// whole front end (parser, semantic analysis with BTF and tracepoint
// formats, LLVM codegen) and exits before loading anything, printing the
// AST and IR on the way. The kernel verifier is not reached by -d, and
// 0.17 cannot load a program without attaching it, so a second test loads
// each script for the lifetime of /bin/true (bpftrace -c).
//
// Both go through scripts/pidgen-bt, which mounts tracefs for tracepoint
// formats when needed and must leave the mount state as it found it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpftraceSkipReason, wrapper } from '../helpers/bpftrace.js';
import { slow } from '../helpers/slow.js';

const root = join(import.meta.dirname, '..', '..');
const scripts = readdirSync(join(root, 'bpf'))
  .filter((name) => name.endsWith('.bt'))
  .sort();

const skipReason = bpftraceSkipReason;

// Lines bpftrace 0.17 prints on every run on these kernels that say nothing
// about the script: the RLIMIT_MEMLOCK raise is refused (kernels >= 5.11
// account BPF memory to the memcg instead), and available_filter_functions
// is refused (EPERM) on this kprobe-less kernel. The second can share a line
// with the first.
function scriptDiagnostics(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((line) =>
      line
        .replace(/^Error while reading traceable functions from \S+: .*?(?=ERROR|$)/, '')
        .replace(/^ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK.*$/, ''),
    )
    .filter((line) => /ERROR|WARNING/.test(line));
}

function tracefsMounted(): boolean {
  return spawnSync('mountpoint', ['-q', '/sys/kernel/tracing']).status === 0;
}

function runWrapper(args: string[]) {
  return spawnSync(wrapper, args, { encoding: 'utf8', timeout: slow(60_000), maxBuffer: 64 * 1024 * 1024 });
}

describe('bpftrace scripts bpf/*.bt (the [kernel] ones need bpftrace and root)', () => {
  it('bpf/ holds pidgen.bt and pidreuse.bt', () => {
    expect(scripts).toEqual(expect.arrayContaining(['pidgen.bt', 'pidreuse.bt']));
  });

  it.for(scripts)(
    '[kernel] bpf/%s compiles with bpftrace -d (parse, types, codegen; nothing loaded or attached)',
    (name, ctx) => {
      if (skipReason) ctx.skip(skipReason);
      const mountedBefore = tracefsMounted();
      const result = runWrapper([name, '-d']);
      expect(result.error).toBeUndefined();
      expect(scriptDiagnostics(result.stderr)).toEqual([]);
      expect(result.status, result.stderr).toBe(0);
      // -d prints the optimised IR last; each probe becomes one function.
      expect(result.stdout).toMatch(/^define .*@"?tracepoint:/m);
      expect(tracefsMounted()).toBe(mountedBefore);
    },
  );

  it.for(scripts)(
    '[kernel] bpf/%s passes the kernel verifier and attaches (traces only while /bin/true runs)',
    (name, ctx) => {
      if (skipReason) ctx.skip(skipReason);
      const mountedBefore = tracefsMounted();
      const result = runWrapper([name, '-c', '/bin/true']);
      expect(result.error).toBeUndefined();
      expect(scriptDiagnostics(result.stderr)).toEqual([]);
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^Attaching \d+ probes\.\.\.$/m);
      // BEGIN printed the column header, so the program ran and END followed.
      expect(result.stdout).toMatch(/^TIME +NS_INUM /m);
      expect(tracefsMounted()).toBe(mountedBefore);
    },
  );

  it('scripts/pidgen-bt --help lists every script with its one-line purpose', () => {
    expect(existsSync(wrapper)).toBe(true);
    const help = spawnSync(wrapper, ['--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    for (const name of scripts) expect(help.stdout).toMatch(new RegExp(`^  ${name.replace('.', '\\.')} +\\S`, 'm'));
  });
});
