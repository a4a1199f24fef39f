/** Linux capabilities of this process, from /proc/self/status. */
import { readFileSync } from 'node:fs';

// include/uapi/linux/capability.h, in bit order.
const CAPABILITY_NAMES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const;

export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

/** Parses the hex `CapEff:` line of a status file into capability names. */
export function parseEffectiveCapabilities(statusText: string): Set<CapabilityName> {
  const match = /^CapEff:\s*([0-9a-f]+)\s*$/im.exec(statusText);
  const held = new Set<CapabilityName>();
  if (!match?.[1]) return held;
  const mask = BigInt(`0x${match[1]}`);
  CAPABILITY_NAMES.forEach((name, bit) => {
    if ((mask >> BigInt(bit)) & 1n) held.add(name);
  });
  return held;
}

/** The effective capabilities of this process. */
export function effectiveCapabilities(statusPath = '/proc/self/status'): Set<CapabilityName> {
  return parseEffectiveCapabilities(readFileSync(statusPath, 'utf8'));
}

/**
 * Whether these capabilities can load and attach tracing BPF programs.
 * Since 5.8 CAP_BPF + CAP_PERFMON suffice; CAP_SYS_ADMIN covers both.
 */
export function canLoadTracingBpf(held: Set<CapabilityName>): boolean {
  return held.has('CAP_SYS_ADMIN') || (held.has('CAP_BPF') && held.has('CAP_PERFMON'));
}

/** The capabilities missing for a BPF guard, to name them in an error. */
export function missingBpfCapabilities(held: Set<CapabilityName>): CapabilityName[] {
  if (canLoadTracingBpf(held)) return [];
  return (['CAP_BPF', 'CAP_PERFMON'] as const).filter((c) => !held.has(c));
}
