// What the real kernel holds of ours, seen through bpftool, independently of
// pidgen's own code.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { slow } from './slow.js';

export const isRoot = process.getuid?.() === 0;

/**
 * Running in a guest that scripts/kernel-test booted: it puts
 * `pidgen.throwaway_guest=1` on the kernel command line. Such a guest is
 * thrown away afterwards (tests may change machine-wide settings there) and
 * has no network.
 */
export const inThrowawayGuest = (() => {
  try {
    return readFileSync('/proc/cmdline', 'utf8').split(/\s+/).includes('pidgen.throwaway_guest=1');
  } catch {
    // No /proc/cmdline: not a guest we booted.
    return false;
  }
})();

interface BpftoolObject {
  id: number;
  name?: string;
  type?: string;
  prog_id?: number;
}

function bpftoolJson(args: string[]): BpftoolObject[] {
  const text = execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' });
  return text.trim() ? (JSON.parse(text) as BpftoolObject[]) : [];
}

/** pidgen's programs, links and maps currently in the kernel, by name. */
export function pidgenKernelObjects(): { progs: string[]; links: number[]; maps: string[] } {
  const progs = bpftoolJson(['prog', 'show']).filter((p) => p.name?.startsWith('pidgen'));
  const progIds = new Set(progs.map((p) => p.id));
  return {
    progs: progs.map((p) => `${p.id}:${p.name}`),
    links: bpftoolJson(['link', 'show'])
      .filter((l) => l.prog_id !== undefined && progIds.has(l.prog_id))
      .map((l) => l.id),
    maps: bpftoolJson(['map', 'show'])
      .filter((m) => m.name?.startsWith('pidgen'))
      .map((m) => `${m.id}:${m.name}`),
  };
}

/**
 * Waits until the kernel has released pidgen's objects. Freeing a closed
 * program is deferred (RCU), so "gone" may take a moment after close.
 */
export async function expectNothingLeft(timeoutMs = slow(5_000)): Promise<{ progs: string[]; links: number[]; maps: string[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = pidgenKernelObjects();
    if ((left.progs.length === 0 && left.maps.length === 0) || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 50));
  }
}
