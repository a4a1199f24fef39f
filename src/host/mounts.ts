/** Mount points by filesystem type, from /proc/self/mountinfo. */
import { readFileSync } from 'node:fs';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
}

// mountinfo escapes space, tab, newline and backslash in paths as octal.
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Parses mountinfo text: fields before ` - ` then fstype (proc(5)). */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const before = line.slice(0, sep).split(' ');
    const after = line.slice(sep + 3).split(' ');
    const mountPoint = before[4];
    const fsType = after[0];
    if (mountPoint && fsType) entries.push({ mountPoint: unescapeMountPath(mountPoint), fsType });
  }
  return entries;
}

/** Every mount this process sees. */
export function readMounts(mountinfoPath = '/proc/self/mountinfo'): MountEntry[] {
  return parseMountinfo(readFileSync(mountinfoPath, 'utf8'));
}

/** Mount points of this filesystem type, e.g. `bpf` or `tracefs`. */
export function mountsOfType(fsType: string, mounts: readonly MountEntry[] = readMounts()): string[] {
  return mounts.filter((m) => m.fsType === fsType).map((m) => m.mountPoint);
}
