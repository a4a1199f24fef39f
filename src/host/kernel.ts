/** Facts about the running kernel that decide what pidgen can load. */
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';

/** Where the kernel publishes its own BTF; CO-RE needs it. */
export const VMLINUX_BTF_PATH = '/sys/kernel/btf/vmlinux';

export interface KernelVersion {
  release: string;
  major: number;
  minor: number;
  patch: number;
}

/** Parses `uname -r` output such as `6.18.44-fc-v595`. */
export function parseKernelRelease(text: string): KernelVersion {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  return {
    release: text.trim(),
    major: Number(m?.[1] ?? 0),
    minor: Number(m?.[2] ?? 0),
    patch: Number(m?.[3] ?? 0),
  };
}

export function kernelVersion(): KernelVersion {
  return parseKernelRelease(release());
}

/** a >= b, comparing major.minor only. */
export function kernelAtLeast(version: KernelVersion, major: number, minor: number): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}

/**
 * Why this kernel's version rules out the BPF guard, in one line, or
 * undefined when it does not. The fork-path program swaps the namespace's
 * last PID number atomically (BPF_XCHG); the verifier accepts that from 5.12
 * ("bpf: Add instructions for atomic_[cmp]xchg"), and 5.10 refuses it with
 * "BPF_STX uses reserved fields".
 */
export function bpfGuardKernelGap(version: KernelVersion = kernelVersion()): string | undefined {
  if (kernelAtLeast(version, 5, 12)) return undefined;
  return `Linux ${version.major}.${version.minor} has no BPF atomic exchange (xchg), which the BPF guard needs (Linux >= 5.12)`;
}

export function hasVmlinuxBtf(path = VMLINUX_BTF_PATH): boolean {
  return existsSync(path);
}

/** The active lockdown mode (`none`, `integrity`, `confidentiality`), or undefined. */
export function lockdownMode(path = '/sys/kernel/security/lockdown'): string | undefined {
  try {
    return /\[(\w+)\]/.exec(readFileSync(path, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}
