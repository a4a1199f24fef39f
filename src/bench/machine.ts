/** The machine a bench ran on: numbers mean little without it. */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, hostname, release, totalmem } from 'node:os';
import { lockdownMode } from '../host/kernel.js';
import type { Machine } from './results.js';

/** The CPU model from /proc/cpuinfo (os.cpus() can report an empty model in VMs). */
function cpuModel(): string {
  try {
    const line = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (line?.[1]) return line[1].trim();
  } catch {
    // Fall through to Node's view.
  }
  return cpus()[0]?.model || 'unknown CPU';
}

export function machineFacts(): Machine {
  const lockdown = lockdownMode();
  return {
    hostname: hostname(),
    kernel: release(),
    cpuModel: cpuModel(),
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    node: process.version,
    ...(lockdown !== undefined ? { lockdown } : {}),
  };
}
