/**
 * Pinned mode: a persistent `/proc/pid_gen`. `pidgen pin` leaves the guard's
 * link and maps in bpffs so the counter keeps counting after the command
 * exits; `pidgen gen` and `snapshot` then read it and load nothing.
 *
 * Layout of the pin directory (native/loader.cc and task_iter.cc name them):
 * `link` (keeps the program attached), `exit_link` (keeps the exit logger
 * attached), `ns` (the per-namespace counters), `log` (the log ring of
 * creations and exits), `bss` (health counters), `meta` (layout
 * version, attach point, when it was attached, whether an iterator is
 * pinned), and, where the task iterator loads, `iter` (its link: snapshots
 * read it without loading anything) and `iter_bss` (its settings).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { fsError, PidgenError } from '../errors.js';
import { Guard, type NamespaceCounter } from '../guard/guard.js';
import { TaskIterator } from '../iter/task-iter.js';
import { mountsOfType } from '../host/mounts.js';
import { attachPointOfId, DEFAULT_PIN_DIR, PIN_NAMES, PINNED_ITER, PINNED_ITER_SLEEPABLE } from '../model/layout.js';
import { nativeAddon, type NativeMeta } from '../native/addon.js';
import { describeOwner, pinDirOwner, untrustedBecause } from './owner.js';

/** Every name `pidgen pin` creates; `unpin` removes these and nothing else. */
export const PINNED_NAMES = Object.values(PIN_NAMES);

export interface PinInfo {
  dir: string;
  layoutVersion: number;
  attach: string;
  /** The task iterator pinned beside the counter, if any. */
  iterator?: { cmdlineFrom: 'bpf' | 'procfs' };
  /** CLOCK_BOOTTIME when the pinned counter was attached. */
  attachedBoottimeNs: bigint;
  /** Wall-clock time of the same moment. */
  attachedAt: Date;
}

function toInfo(dir: string, meta: NativeMeta): PinInfo {
  return {
    dir,
    layoutVersion: meta.layoutVersion,
    attach: attachPointOfId(meta.attach) ?? `unknown (${meta.attach})`,
    ...(meta.iter & PINNED_ITER ? { iterator: { cmdlineFrom: meta.iter & PINNED_ITER_SLEEPABLE ? ('bpf' as const) : ('procfs' as const) } } : {}),
    attachedBoottimeNs: meta.attachedBoottimeNs,
    attachedAt: new Date(Number(meta.attachedRealtimeNs / 1_000_000n)),
  };
}

/** What dir holds, for messages: "holding a, b" or "empty". */
function contents(dir: string): string {
  try {
    const names = readdirSync(dir);
    return names.length ? `holding ${names.join(', ')}` : 'empty';
  } catch (error) {
    return `unreadable (${(error as NodeJS.ErrnoException).code ?? 'EIO'})`;
  }
}

/** How to clear a directory that blocks pinning. */
function clearHint(dir: string): string {
  return `bpffs lets any user mkdir there; see what it holds (ls -la ${dir}), remove it as root (rm -r ${dir}), then run \`pidgen pin\``;
}

/**
 * The pin's meta record, or undefined when nothing is pinned at dir. A pin
 * directory that root does not own alone is refused, not read: its maps could
 * be anyone's.
 */
export function readPinned(dir = DEFAULT_PIN_DIR): PinInfo | undefined {
  if (!existsSync(`${dir}/${PIN_NAMES.meta}`)) return undefined;
  const owner = pinDirOwner(dir);
  const untrusted = untrustedBecause(owner);
  if (untrusted) {
    throw new PidgenError(`read pin ${dir}: the directory is ${describeOwner(owner)}, ${untrusted}, so its pins cannot be trusted`, {
      code: 'EPERM',
      op: 'read pin',
      target: dir,
      hint: clearHint(dir),
    });
  }
  return toInfo(dir, nativeAddon().readPinnedMeta(dir));
}

/** The bpffs mount that will hold dir, mounting one at /sys/fs/bpf if none is there. */
function ensureBpffs(dir: string): { mounted: boolean } {
  const mounts = mountsOfType('bpf');
  if (mounts.some((m) => dir === m || dir.startsWith(`${m}/`))) return { mounted: false };
  if (!dir.startsWith('/sys/fs/bpf/')) {
    throw new PidgenError(`pin ${dir}: not on a bpffs mount`, {
      code: 'ENOTSUP',
      op: 'pin',
      target: dir,
      hint: `mount one first: mount -t bpf bpf ${dir.slice(0, dir.lastIndexOf('/')) || '/'}`,
    });
  }
  const result = spawnSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf'], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new PidgenError(`mount bpffs at /sys/fs/bpf: ${result.stderr.trim() || `exit ${result.status}`}`, {
      code: 'EPERM',
      op: 'mount bpffs',
      target: '/sys/fs/bpf',
      hint: 'mount it yourself: mount -t bpf bpf /sys/fs/bpf',
    });
  }
  return { mounted: true };
}

export interface PinResult {
  info: PinInfo;
  /** It was already pinned by this layout: nothing was done. */
  already: boolean;
  /** bpffs was not mounted and pidgen mounted it at /sys/fs/bpf. */
  mountedBpffs: boolean;
}

/**
 * Loads the guard and pins it. Idempotent: an existing pin of this layout is
 * kept as it is. A pin of another layout, or a directory that holds no
 * pidgen counter, is refused with advice.
 */
export function pin(options: { dir?: string; verbose?: boolean } = {}): PinResult {
  const dir = options.dir ?? DEFAULT_PIN_DIR;
  const { mounted } = ensureBpffs(dir);
  if (existsSync(dir)) {
    const owner = pinDirOwner(dir);
    const untrusted = untrustedBecause(owner);
    if (untrusted) {
      throw new PidgenError(
        `pin ${dir}: the directory exists but is ${describeOwner(owner)}, ${untrusted} (${contents(dir)}); pidgen pins only into a directory that root owns and alone can write`,
        { code: 'EEXIST', op: 'pin', target: dir, hint: clearHint(dir) },
      );
    }
    let info: PinInfo | undefined;
    try {
      info = readPinned(dir);
    } catch (error) {
      throw new PidgenError(`pin ${dir}: the directory exists but its meta record cannot be read (${(error as Error).message})`, {
        code: 'EEXIST',
        op: 'pin',
        target: dir,
        hint: 'run `pidgen unpin` to clear it, then pin again',
      }, { cause: error });
    }
    if (!info) {
      throw new PidgenError(`pin ${dir}: the directory exists but holds no pidgen counter (${describeOwner(owner)}, ${contents(dir)})`, {
        code: 'EEXIST',
        op: 'pin',
        target: dir,
        hint: 'run `pidgen unpin` to clear what pidgen would have pinned there (and the directory, once empty), then pin again',
      });
    }
    const ours = nativeAddon().layoutVersion;
    if (info.layoutVersion !== ours) {
      throw new PidgenError(
        `pin ${dir}: already pinned by an incompatible pidgen (layout ${info.layoutVersion}; this pidgen uses ${ours})`,
        { code: 'EPROTO', op: 'pin', target: dir, hint: 'run `pidgen unpin`, then `pidgen pin`' },
      );
    }
    return { info, already: true, mountedBpffs: mounted };
  }

  try {
    // 0755 whatever the umask: a later pin or snapshot trusts only a
    // directory that root alone can write.
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
  } catch (error) {
    throw fsError('mkdir', dir, error);
  }
  try {
    const guard = Guard.open({ pinned: 'never', verbose: options.verbose ?? false });
    try {
      guard.pin(dir);
      // The task iterator too, where it loads, so a snapshot on the pin
      // loads nothing at all. Without it snapshots still work (they load
      // their own iterator, or walk /proc).
      let iterator: TaskIterator | undefined;
      try {
        iterator = TaskIterator.open({ pinned: 'never', verbose: options.verbose ?? false });
      } catch (error) {
        if (!(error instanceof PidgenError)) throw error;
      }
      if (iterator) {
        try {
          guard.recordPinnedIterator(iterator.pin(dir));
        } finally {
          iterator.close();
        }
      }
    } catch (error) {
      for (const name of PINNED_NAMES) {
        try {
          unlinkSync(`${dir}/${name}`);
        } catch {
          // Not pinned yet.
        }
      }
      throw error;
    } finally {
      // The pins hold the links and maps now; this process's fds can go.
      guard.close();
    }
  } catch (error) {
    rmdirSync(dir);
    throw error;
  }
  return { info: readPinned(dir)!, already: false, mountedBpffs: mounted };
}

export interface UnpinResult {
  removed: string[];
  /** Files in the directory that pidgen did not create, left in place. */
  leftAlone: string[];
  wasPinned: boolean;
  /** The directory existed (pinned or not). */
  existed: boolean;
  /** The directory was removed (it was empty once pidgen's names were gone). */
  removedDir: boolean;
  /** "owned by root (uid 0), mode 0755", when it existed. */
  owner?: string;
}

/**
 * Removes exactly what `pin` created; unpinning the link detaches the
 * program. A directory root does not own alone is not pidgen's: it is left
 * as it is, and the error says whose it is and how to clear it.
 */
export function unpin(dir = DEFAULT_PIN_DIR): UnpinResult {
  if (!existsSync(dir)) return { removed: [], leftAlone: [], wasPinned: false, existed: false, removedDir: false };
  const owner = pinDirOwner(dir);
  const untrusted = untrustedBecause(owner);
  if (untrusted) {
    throw new PidgenError(
      `unpin ${dir}: not pidgen's pin directory: ${describeOwner(owner)}, ${untrusted} (${contents(dir)}); left alone`,
      { code: 'EPERM', op: 'unpin', target: dir, hint: `it blocks \`pidgen pin\`: ${clearHint(dir)}` },
    );
  }
  const present = readdirSync(dir);
  const removed: string[] = [];
  // PINNED_NAMES lists the links first: programs detach before their maps go.
  for (const name of PINNED_NAMES) {
    if (!present.includes(name)) continue;
    try {
      unlinkSync(`${dir}/${name}`);
    } catch (error) {
      throw fsError('unlink', `${dir}/${name}`, error);
    }
    removed.push(name);
  }
  const leftAlone = present.filter((name) => !(PINNED_NAMES as readonly string[]).includes(name));
  if (leftAlone.length === 0) {
    try {
      rmdirSync(dir);
    } catch (error) {
      throw fsError('rmdir', dir, error);
    }
  }
  return {
    removed,
    leftAlone,
    wasPinned: removed.length > 0,
    existed: true,
    removedDir: leftAlone.length === 0,
    owner: describeOwner(owner),
  };
}

export interface PinStatus {
  pinned: boolean;
  info?: PinInfo;
  counters?: NamespaceCounter[];
  scanningNs?: number;
}

/** Whether a counter is pinned, since when, its attach point and counters. */
export function status(dir = DEFAULT_PIN_DIR): PinStatus {
  const info = readPinned(dir);
  if (!info) return { pinned: false };
  const guard = Guard.open({ pinned: 'only', pinDir: dir });
  try {
    return { pinned: true, info, counters: guard.namespaces(), scanningNs: guard.namespace };
  } finally {
    guard.close();
  }
}
