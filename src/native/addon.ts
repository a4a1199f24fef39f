/**
 * The native addon, loaded once, with its error class wired to
 * {@link PidgenError}. Each function here is one line over the C++ side;
 * argument checks and policy live in the callers.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PidgenError } from '../errors.js';
import type { AttachKind } from '../model/layout.js';
import { packageRoot } from '../package.js';

export type { AttachKind } from '../model/layout.js';

/** One namespace's counter as the BPF map holds it. */
export interface NativeCounter {
  inum: number;
  generation: bigint;
  allocations: bigint;
  bumpedAtNs: bigint;
  lastNr: number;
  flags: number;
}

/** What a loaded or pinned guard records about itself (struct pidgen_meta). */
export interface NativeMeta {
  layoutVersion: number;
  /** PIDGEN_ATTACH_*: 1 fexit, 2 tp_btf, 3 raw_tp. */
  attach: number;
  attachedBoottimeNs: bigint;
  attachedRealtimeNs: bigint;
  /** PIDGEN_PINNED_ITER (1) | PIDGEN_PINNED_ITER_SLEEPABLE (2), or 0. */
  iter: number;
}

export interface NativeGuardHandle {
  /** The attach point in the kernel's words, e.g. `tp_btf/task_newtask`. */
  readonly attach: string | null;
  readonly closed: boolean;
  /** Opened from bpffs pins rather than loaded by this process. */
  readonly pinned: boolean;
  readonly meta: NativeMeta;
  /** Pins link and maps under dir (which must exist). */
  pin(dir: string): void;
  /** Records in the meta map that a task iterator is pinned beside it. */
  setPinnedIterator(flags: number): void;
  readAll(): NativeCounter[];
  read(inum: number): NativeCounter | null;
  /** true if the seed was stored, false if the programs had made a record first. */
  seed(inum: number, lastNr: number): boolean;
  stats(): { nsMapFull: bigint; readErrors: bigint; logDrops: bigint };
  /** Which namespace's allocations go to the log ring; 0 stops logging. */
  setLogNamespace(inum: number): void;
  /** Every record in the ring, as packed `struct pidgen_alloc_event`s. */
  drainLog(): Buffer;
  close(): void;
}

/** Raw reads of one /proc/<pid>, all through one directory fd. Each file is
 * its bytes, or the errno that stopped it. */
export interface NativeProcessRead {
  pid: number;
  /** Opening /proc/<pid> failed; nothing else was read. */
  openErr?: number;
  stat?: Buffer;
  statErr?: number;
  status?: Buffer;
  statusErr?: number;
  cmdline?: Buffer;
  cmdlineErr?: number;
  threads?: { tid: number; stat?: Buffer; statErr?: number }[];
  threadsErr?: number;
  pidfdIno?: bigint;
  pidfdErr?: number;
}

export interface NativeReadOptions {
  /** Default true. */
  stat?: boolean;
  threads: boolean;
  cmdline: boolean;
  status: boolean;
  pidfd: boolean;
}

export interface NativeTaskIterator {
  readonly sleepable: boolean;
  /** One pass: packed `struct pidgen_task_record`s (PIDGEN_ITER_* options). */
  read(options: number): Buffer;
  /** read(), with procRoot listed (as listPids) on a second thread during the pass. */
  readListing(options: number, procRoot: string): [Buffer, Int32Array];
  /** Pins the iterator link (`iter`) and its settings map (`iter_bss`) under dir. */
  pin(dir: string): void;
  close(): void;
}

export interface NativeAddon {
  open(options: { attach: AttachKind; verbose?: boolean }): NativeGuardHandle;
  /** The counter `pidgen pin` left in dir; loads nothing. EPROTO: another layout. */
  openPinned(dir: string): NativeGuardHandle;
  readPinnedMeta(dir: string): NativeMeta;
  /** Exclusive flock without waiting: the fd holding it, or -1 if taken. */
  lockFile(path: string): number;
  unlockFile(fd: number): void;
  setErrorClass(ctor: typeof PidgenError): void;
  libbpfVersion(): string;
  /** CLOCK_BOOTTIME now, in nanoseconds. */
  boottimeNs(): bigint;
  readProcesses(procRoot: string, pids: Int32Array, options: NativeReadOptions): NativeProcessRead[];
  /** The numeric entries of procRoot, ascending; throws PidgenError (op readdir) naming the path and errno. */
  listPids(procRoot: string): Int32Array;
  /** Loads bpf/task_iter.bpf.c: the sleepable program (argv too) or the plain one. */
  /** `minimal`: `pidgen bench`'s yardstick program instead (a fixed record, nothing else). */
  openTaskIterator(options: { sleepable: boolean; minimal?: boolean; verbose?: boolean; pinnedDir?: string }): NativeTaskIterator;
  /** openTaskIterator's load (not a pinned one) on a worker thread. */
  openTaskIteratorAsync(options: { sleepable: boolean; verbose?: boolean }): Promise<NativeTaskIterator>;
  readonly layoutVersion: number;
}

/** Where a source build puts the addon (scripts/build-native.mjs). */
export const sourceBuildPath = join(packageRoot, 'build', 'native', 'Release', 'pidgen.node');

/** Which addon binary is loaded: built on this host, or shipped prebuilt. */
export interface AddonOrigin {
  kind: 'source' | 'prebuilt';
  path: string;
}

/**
 * The addon binary to load. A source build wins: it exists only when the
 * prebuilt could not load at install time, when the user asked for one
 * (`--build-from-source`), or in a development checkout. Otherwise the
 * prebuilt that node-gyp-build picks from prebuilds/<platform>-<arch>/ (the
 * prebuildify layout) for this platform, arch and libc; undefined if none.
 */
export function locateAddon(): AddonOrigin | undefined {
  if (existsSync(sourceBuildPath)) return { kind: 'source', path: sourceBuildPath };
  const require = createRequire(import.meta.url);
  try {
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    return { kind: 'prebuilt', path: nodeGypBuild.resolve(packageRoot) };
  } catch {
    return undefined;
  }
}

let loaded: NativeAddon | undefined;
let loadedOrigin: AddonOrigin | undefined;

/** The binary {@link nativeAddon} loaded, once it has. */
export function nativeAddonOrigin(): AddonOrigin | undefined {
  return loadedOrigin;
}

/** Loads the addon, or throws ENOADDON with the command that builds it. */
export function nativeAddon(): NativeAddon {
  if (loaded) return loaded;
  const origin = locateAddon();
  if (!origin) {
    throw new PidgenError(`load native addon: no prebuilt addon for ${process.platform}-${process.arch} and no source build at ${sourceBuildPath}`, {
      code: 'ENOADDON',
      op: 'load native addon',
      target: sourceBuildPath,
      hint: 'build it: `npm rebuild pidgen --build-from-source` where pidgen is installed, `scripts/setup` in a checkout',
    });
  }
  const require = createRequire(import.meta.url);
  try {
    loaded = require(origin.path) as NativeAddon;
  } catch (error) {
    throw new PidgenError(`load native addon ${origin.path}: ${(error as Error).message}`, {
      code: 'ENOADDON',
      op: 'load native addon',
      target: origin.path,
      hint:
        origin.kind === 'prebuilt'
          ? 'the prebuilt needs x86_64 glibc >= 2.34; build from source instead: `npm rebuild pidgen --build-from-source`'
          : 'the source build links the system libbpf.so.1 (apt-get install libbpf1); rebuild: `npm rebuild pidgen --build-from-source`, or `npm run build:native -- --force` in a checkout',
    }, { cause: error });
  }
  loadedOrigin = origin;
  loaded.setErrorClass(PidgenError);
  return loaded;
}
