// Host probes on canned text: what doctor and the guard's preflight decide.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canLoadTracingBpf, missingBpfCapabilities, parseEffectiveCapabilities } from '../../src/host/capabilities.js';
import { bpfGuardKernelGap, kernelAtLeast, parseKernelRelease } from '../../src/host/kernel.js';
import { parseMountinfo } from '../../src/host/mounts.js';
import { Guard } from '../../src/guard/guard.js';
import { PidgenError } from '../../src/errors.js';
import { reportError } from '../../src/cli/report.js';

describe('capabilities', () => {
  it('root (CapEff 000001ffffffffff) may load tracing BPF', () => {
    const held = parseEffectiveCapabilities('Name:\tx\nCapEff:\t000001ffffffffff\n');
    expect(held.has('CAP_BPF')).toBe(true);
    expect(held.has('CAP_PERFMON')).toBe(true);
    expect(canLoadTracingBpf(held)).toBe(true);
  });

  it('an unprivileged process (CapEff 0) is told exactly which capabilities it lacks', () => {
    const held = parseEffectiveCapabilities('CapEff:\t0000000000000000\n');
    expect(canLoadTracingBpf(held)).toBe(false);
    expect(missingBpfCapabilities(held)).toEqual(['CAP_BPF', 'CAP_PERFMON']);
  });

  it('CAP_BPF + CAP_PERFMON without CAP_SYS_ADMIN is enough (kernel >= 5.8)', () => {
    const mask = (1n << 38n) | (1n << 39n);
    const held = parseEffectiveCapabilities(`CapEff:\t${mask.toString(16).padStart(16, '0')}\n`);
    expect([...held].sort()).toEqual(['CAP_BPF', 'CAP_PERFMON']);
    expect(canLoadTracingBpf(held)).toBe(true);
  });

  it('this machine\'s own /proc/self/status parses', () => {
    const held = parseEffectiveCapabilities(readFileSync('/proc/self/status', 'utf8'));
    expect(held).toBeInstanceOf(Set);
  });
});

describe('kernel release', () => {
  it('parses distribution suffixes', () => {
    expect(parseKernelRelease('6.18.44-fc-v595')).toMatchObject({ major: 6, minor: 18, patch: 44 });
    expect(parseKernelRelease('5.10.0-28-amd64')).toMatchObject({ major: 5, minor: 10, patch: 0 });
  });

  it('compares major.minor', () => {
    const v = parseKernelRelease('5.8.1');
    expect(kernelAtLeast(v, 5, 8)).toBe(true);
    expect(kernelAtLeast(v, 5, 12)).toBe(false);
    expect(kernelAtLeast(parseKernelRelease('6.1.0'), 5, 12)).toBe(true);
  });

  it('names the missing BPF atomic exchange, in one line, on kernels before 5.12 only', () => {
    expect(bpfGuardKernelGap(parseKernelRelease('5.10.0-46-amd64'))).toBe(
      'Linux 5.10 has no BPF atomic exchange (xchg), which the BPF guard needs (Linux >= 5.12)',
    );
    expect(bpfGuardKernelGap(parseKernelRelease('5.12.0'))).toBeUndefined();
    expect(bpfGuardKernelGap(parseKernelRelease('6.1.0-57-amd64'))).toBeUndefined();
  });
});

describe('mountinfo', () => {
  it('finds bpffs and tracefs, and unescapes octal-escaped mount points', () => {
    const text = [
      '23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw',
      '40 23 0:34 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:15 - bpf bpf rw,mode=700',
      '41 23 0:12 / /sys/kernel/tracing rw,relatime - tracefs nodev rw',
      '42 1 0:50 / /mnt/my\\040disk rw - ext4 /dev/sdb1 rw',
    ].join('\n');
    const mounts = parseMountinfo(text);
    expect(mounts.filter((m) => m.fsType === 'bpf').map((m) => m.mountPoint)).toEqual(['/sys/fs/bpf']);
    expect(mounts.filter((m) => m.fsType === 'tracefs').map((m) => m.mountPoint)).toEqual(['/sys/kernel/tracing']);
    expect(mounts.find((m) => m.fsType === 'ext4')?.mountPoint).toBe('/mnt/my disk');
  });
});

describe('guard preflight', () => {
  it('a kernel without BTF gets a clear ENOBTF error naming the path, before anything is loaded', () => {
    const missing = join('/nonexistent', 'vmlinux');
    let error: unknown;
    try {
      Guard.open({ btfPath: missing });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PidgenError);
    expect((error as PidgenError).code).toBe('ENOBTF');
    expect((error as PidgenError).message).toContain(missing);
    expect((error as PidgenError).hint).toMatch(/CONFIG_DEBUG_INFO_BTF/);
  });

  it('an unknown attach point is refused with EINVAL', () => {
    expect(() => Guard.open({ attach: 'kprobe' as never })).toThrowError(/unknown attach point 'kprobe'/);
  });
});

describe('CLI error reporting', () => {
  it('a PidgenError prints what, where and why plus a hint, no stack, exit 1', () => {
    let text = '';
    const code = reportError(
      new PidgenError('load fexit/alloc_pid: EPERM (Operation not permitted)', {
        code: 'EPERM',
        op: 'load',
        hint: 'run as root',
      }),
      (t) => (text += t),
    );
    expect(code).toBe(1);
    expect(text).toBe('pidgen: load fexit/alloc_pid: EPERM (Operation not permitted)\nhint: run as root\n');
  });
});
