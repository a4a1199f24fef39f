/**
 * The BPF guard: pidgen's emulation of the never-merged `/proc/pid_gen`.
 *
 * A BPF program on the PID allocation path keeps, per PID namespace, a
 * `generation` that goes up whenever a PID number is handed out that is not
 * greater than the previous one there (cyclic wrap, clone3 set_tid, a write
 * to ns_last_pid). If it did not move between two reads, no number was
 * allocated twice in between. That alone does not rule out PID reuse: a
 * number left from before the last wrap, whose task dies in between, can be
 * handed out again without a new wrap. The allocation log
 * ({@link Guard.beginAllocationLog}) names every number handed out, which is
 * what snapshots decide with.
 */
import { existsSync, statSync } from 'node:fs';
import { fsError, PidgenError } from '../errors.js';
import { canLoadTracingBpf, effectiveCapabilities, missingBpfCapabilities } from '../host/capabilities.js';
import { bpfGuardKernelGap, hasVmlinuxBtf, VMLINUX_BTF_PATH } from '../host/kernel.js';
import { ownPidNamespace, procPidNamespace, readNsLastPid } from '../host/pidns.js';
import {
  ATTACH,
  DEFAULT_PIN_DIR,
  EVENT_EXACT_START,
  EVENT_EXIT,
  EVENT_THREAD,
  LOG_EVENT,
  NS_FIRST_SEEN_LATE,
  NS_SEEDED,
  PIN_NAMES,
  type AttachKind,
} from '../model/layout.js';
import { nativeAddon, type NativeCounter, type NativeGuardHandle } from '../native/addon.js';
import { decodeComm } from '../procfs/decode.js';

export type { AttachKind } from '../model/layout.js';
export { DEFAULT_PIN_DIR } from '../model/layout.js';

/** Attach points in the order `attach: 'auto'` tries them. */
export const ATTACH_ORDER: readonly AttachKind[] = ['fexit', 'tp_btf', 'raw_tp'];

/** The kernel hook each attach kind uses, as libbpf and bpftool name it. */
export const ATTACH_POINTS: Readonly<Record<AttachKind, string>> = {
  fexit: ATTACH.fexit.point,
  tp_btf: ATTACH.tp_btf.point,
  raw_tp: ATTACH.raw_tp.point,
};

export interface GuardOptions {
  /**
   * Which attach point(s) to try: `'auto'` (default) tries fexit, tp_btf,
   * raw_tp in that order; a kind or list restricts the choice.
   */
  attach?: 'auto' | AttachKind | readonly AttachKind[];
  /** The /proc whose namespace is the scanning namespace. Default `/proc`. */
  procRoot?: string;
  /** Print libbpf's and the verifier's messages on stderr. */
  verbose?: boolean;
  /** Where to look for the kernel's BTF. Default `/sys/kernel/btf/vmlinux`. */
  btfPath?: string;
  /**
   * The counter `pidgen pin` keeps in bpffs: `'auto'` uses it when it
   * exists and loads nothing then; `'never'` always loads a private one;
   * `'only'` uses the pin or fails. Default `'auto'`, or `'never'` when
   * `attach` names an attach point. A pin directory that root does not own,
   * or that its group or others can write, is never used: `'auto'` loads a
   * private guard then, and `'only'` throws `EPERM`.
   */
  pinned?: 'auto' | 'never' | 'only';
  /** Pin directory. Default `/sys/fs/bpf/pidgen`. */
  pinDir?: string;
}

/** One PID namespace's counter. */
export interface NamespaceCounter {
  /** Namespace inode number, as in `readlink /proc/<pid>/ns/pid`. */
  inum: number;
  /** Times a PID number here was not greater than the one before it. */
  generation: bigint;
  /** PID numbers allocated here since the guard was attached. */
  allocations: bigint;
  /** The most recently allocated PID number seen here. */
  lastNr: number;
  /** CLOCK_BOOTTIME nanoseconds of the latest bump; 0n if none. */
  bumpedAtNs: bigint;
  /** lastNr was seeded from ns_last_pid when the guard opened. */
  seeded: boolean;
  /**
   * The namespace was first seen after it had allocated other PIDs, so its
   * counter started with a conservative bump instead of a guessed baseline.
   */
  firstSeenLate: boolean;
}

/**
 * One record of the log a snapshot keeps (struct pidgen_log_event): a PID
 * number handed to a new task in the logged namespace (`kind: 'new'`), or a
 * task of that namespace exiting (`kind: 'exit'`).
 */
export interface LogEvent {
  kind: 'new' | 'exit';
  /** Namespace inode the number belongs to. */
  inum: number;
  /** The number (a TID) as that namespace sees it. */
  nr: number;
  /** Its thread group there; 0 when not known (fexit/alloc_pid, no task yet). */
  tgid: number;
  /**
   * CLOCK_BOOTTIME ns: the task's start_boottime (task_newtask hooks, and
   * exits), or the allocation time (fexit/alloc_pid, where no task exists yet).
   */
  startNs: bigint;
  /** CLOCK_BOOTTIME ns when the program ran: the task_newtask event, or the exit. */
  atNs: bigint;
  /** pidfs inode of the `struct pid` (0n before 6.9): never reused. */
  ino: bigint;
  /** The task is a thread (known only on the task hooks). */
  thread: boolean;
  /** startNs is the task's own start_boottime. */
  exactStart: boolean;
  /** The task's name then (at exit, its last one); empty on fexit. */
  comm: string;
  /**
   * On a creation: the task that made it (the forking task, current in
   * copy_process), numbered in the same namespace: its TID and thread group.
   * 0 when it has no number there (it forked into a child namespace, as
   * `unshare --fork` does for the child's init) and on exits.
   */
  creatorTid: number;
  creatorTgid: number;
}

/** A `kind: 'new'` record: one PID number taken. */
export type AllocationEvent = LogEvent & { kind: 'new' };
/** A `kind: 'exit'` record: one task of the namespace exited. */
export type ExitEvent = LogEvent & { kind: 'exit' };

/** Parses packed log records without a native call per record. */
export function parseLogEvents(records: Uint8Array): LogEvent[] {
  const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
  const bytes = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
  const events: LogEvent[] = [];
  const E = LOG_EVENT;
  for (let offset = 0; offset + E.size <= records.byteLength; offset += E.size) {
    const flags = view.getUint32(offset + E.flags, true);
    events.push({
      kind: flags & EVENT_EXIT ? 'exit' : 'new',
      startNs: view.getBigUint64(offset + E.startNs, true),
      atNs: view.getBigUint64(offset + E.atNs, true),
      ino: view.getBigUint64(offset + E.ino, true),
      inum: view.getUint32(offset + E.inum, true),
      nr: view.getUint32(offset + E.nr, true),
      tgid: view.getUint32(offset + E.tgid, true),
      thread: (flags & EVENT_THREAD) !== 0,
      exactStart: (flags & EVENT_EXACT_START) !== 0,
      comm: decodeComm(bytes.subarray(offset + E.comm, offset + E.commEnd)).text,
      creatorTid: view.getUint32(offset + E.creatorTid, true),
      creatorTgid: view.getUint32(offset + E.creatorTgid, true),
    });
  }
  return events;
}

/** @deprecated The log now carries exits too; use {@link parseLogEvents}. */
export const parseAllocationEvents = parseLogEvents;

/** An attach point that was tried and refused, and why. */
export interface AttachRefusal {
  attach: string;
  /** errno name or pidgen code, e.g. `EPERM`. */
  code: string;
  errno?: number;
  message: string;
}

function toCounter(raw: NativeCounter): NamespaceCounter {
  return {
    inum: raw.inum,
    generation: raw.generation,
    allocations: raw.allocations,
    lastNr: raw.lastNr,
    bumpedAtNs: raw.bumpedAtNs,
    seeded: (raw.flags & NS_SEEDED) !== 0,
    firstSeenLate: (raw.flags & NS_FIRST_SEEN_LATE) !== 0,
  };
}

function attachList(attach: GuardOptions['attach']): readonly AttachKind[] {
  if (attach === undefined || attach === 'auto') return ATTACH_ORDER;
  const list = typeof attach === 'string' ? [attach] : attach;
  for (const kind of list) {
    if (!ATTACH_ORDER.includes(kind)) {
      throw new PidgenError(`open guard: unknown attach point '${String(kind)}' (expected ${ATTACH_ORDER.join(', ')})`, {
        code: 'EINVAL',
        op: 'open guard',
      });
    }
  }
  if (list.length === 0) throw new PidgenError('open guard: empty attach list', { code: 'EINVAL', op: 'open guard' });
  return list;
}

/** Fails early, with advice, where the kernel would refuse anyway. */
function preflight(btfPath: string | undefined): void {
  if (process.platform !== 'linux') {
    throw new PidgenError(`open guard: pidgen needs Linux, this is ${process.platform}`, {
      code: 'ENOSYS',
      op: 'open guard',
    });
  }
  if (btfPath !== undefined && !hasVmlinuxBtf(btfPath)) {
    throw new PidgenError(`open guard: no kernel BTF at ${btfPath}`, {
      code: 'ENOBTF',
      op: 'open guard',
      target: btfPath,
      hint: 'pidgen\'s BPF guard needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.8 are)',
    });
  }
  const held = effectiveCapabilities();
  if (!canLoadTracingBpf(held)) {
    const missing = missingBpfCapabilities(held);
    throw new PidgenError(`open guard: not permitted to load BPF programs (missing ${missing.join(' and ')})`, {
      code: 'EPERM',
      op: 'open guard',
      hint: 'run as root (e.g. `sudo npx pidgen ...`), or grant CAP_BPF and CAP_PERFMON',
    });
  }
}

export class Guard implements Disposable {
  /** The attach point in use, e.g. `tp_btf/task_newtask`. */
  readonly attach: string;
  /** Attach points tried before this one and why each was refused. */
  readonly refused: readonly AttachRefusal[];
  /** The scanning namespace: the one the guard's /proc lists. */
  readonly namespace: number;
  /** The ns_last_pid value the scanning namespace was seeded with, if the seed won. */
  readonly seededLastNr: number | undefined;
  /** This guard is the counter `pidgen pin` left in bpffs: nothing was loaded. */
  readonly pinned: boolean;

  #handle: NativeGuardHandle;
  #pinDir: string;

  private constructor(
    handle: NativeGuardHandle,
    refused: AttachRefusal[],
    namespace: number,
    seeded: number | undefined,
    pinDir: string,
  ) {
    this.#handle = handle;
    this.attach = handle.attach ?? 'unknown';
    this.refused = refused;
    this.namespace = namespace;
    this.seededLastNr = seeded;
    this.pinned = handle.pinned;
    this.#pinDir = pinDir;
  }

  /**
   * Loads and attaches the counter, trying attach points in order.
   * Throws {@link PidgenError}: `EPERM` without privileges, `ENOBTF` without
   * kernel BTF, `ENOATTACH` when every attach point was refused (with the
   * reason when this kernel is older than the BPF guard needs), `EPERM` for
   * `pinned: 'only'` and an untrusted pin directory.
   */
  static open(options: GuardOptions = {}): Guard {
    const kinds = attachList(options.attach);
    const procRoot = options.procRoot ?? '/proc';
    const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
    // Asking for an attach point by name means "load that one": a pin,
    // attached wherever it was, would not honour the request.
    const explicitAttach = options.attach !== undefined && options.attach !== 'auto';
    const pinnedMode = options.pinned ?? (explicitAttach ? 'never' : 'auto');
    const pinExists = pinnedMode !== 'never' && existsSync(`${pinDir}/${PIN_NAMES.meta}`);
    // bpffs is mode 1777: anyone who may create BPF maps could plant a
    // "pin" there whose counters never move. Use only a root-owned one.
    const distrust = pinExists ? pinDirDistrust(pinDir) : undefined;
    if (distrust && pinnedMode === 'only') {
      throw new PidgenError(`open pinned guard ${pinDir}: the directory is ${distrust}, so its pins cannot be trusted`, {
        code: 'EPERM',
        op: 'open pinned guard',
        target: pinDir,
        hint: `see what it holds (ls -la ${pinDir}), remove it as root (rm -r ${pinDir}), then run \`pidgen pin\``,
      });
    }
    // 'auto' loads a private guard instead, as if nothing were pinned.
    const usePin = pinExists && !distrust;
    if (pinnedMode === 'only' && !usePin) {
      throw new PidgenError(`open pinned guard: nothing pinned at ${pinDir}`, {
        code: 'ENOENT',
        op: 'open pinned guard',
        target: pinDir,
        hint: 'run `pidgen pin` first',
      });
    }
    // A pinned counter needs no BTF here: it was verified when it was pinned.
    preflight(usePin ? undefined : (options.btfPath ?? VMLINUX_BTF_PATH));
    const addon = nativeAddon();
    const namespace = procPidNamespace(procRoot);

    if (usePin) {
      let handle: NativeGuardHandle;
      try {
        handle = addon.openPinned(pinDir);
      } catch (error) {
        if (error instanceof PidgenError && error.code === 'EPROTO') {
          throw new PidgenError(`open pinned guard ${pinDir}: pinned by an incompatible pidgen (another layout version)`, {
            code: 'EPROTO',
            op: 'open pinned guard',
            target: pinDir,
            hint: 'run `pidgen unpin` (as the pidgen that pinned it, or by removing the directory), then `pidgen pin`',
          }, { cause: error });
        }
        throw error;
      }
      return Guard.#seeded(handle, [], namespace, pinDir);
    }

    const refused: AttachRefusal[] = [];
    let lastLog: string | undefined;
    let handle: NativeGuardHandle | undefined;
    for (const kind of kinds) {
      try {
        handle = addon.open({ attach: kind, verbose: options.verbose ?? false });
        break;
      } catch (error) {
        if (!(error instanceof PidgenError)) throw error;
        lastLog = error.log;
        refused.push({
          attach: ATTACH_POINTS[kind],
          code: error.code,
          ...(error.errno !== undefined ? { errno: error.errno } : {}),
          message: error.message,
        });
      }
    }
    if (!handle) {
      // The verifier says EINVAL for an instruction it does not know; on a
      // kernel older than the BPF guard needs, that is the reason.
      const gap = refused.every((r) => r.code === 'EINVAL') ? bpfGuardKernelGap() : undefined;
      throw new PidgenError(
        `open guard: every attach point was refused: ${refused.map((r) => `${r.attach} (${r.code})`).join(', ')}${gap ? `: ${gap}` : ''}`,
        {
          code: 'ENOATTACH',
          op: 'attach',
          target: refused.map((r) => r.attach).join(', '),
          hint: gap
            ? "no BPF guard loads on this kernel; snapshots can use the cursor guard (`pidgen snapshot --guard cursor`, or the default --guard auto, which falls back to it; snapshot({ guard: 'cursor' }) in the library)"
            : '`pidgen doctor` shows what this host supports; run with --verbose for the verifier log',
          ...(lastLog ? { log: lastLog } : {}),
        },
      );
    }

    return Guard.#seeded(handle, refused, namespace, pinDir);
  }

  static #seeded(handle: NativeGuardHandle, refused: AttachRefusal[], namespace: number, pinDir: string): Guard {
    // Seed the scanning namespace so its first allocation after attach is
    // compared with a real previous number instead of being taken silently
    // as the baseline.
    //
    // The race: an allocation can happen between attach and this seed. The
    // order is attach, then read ns_last_pid, then insert with BPF_NOEXIST.
    // - If the program saw an allocation before our insert, its record exists
    //   (started with a conservative bump, since that nr was not 1), the
    //   insert fails with EEXIST and the program's record stands.
    // - If an allocation comes after the insert, it is compared with the
    //   ns_last_pid we read, which was read after attach, so it is no older
    //   than anything the program missed: a wrap after that read gives an nr
    //   not above it and bumps. A fork whose number was taken before attach
    //   but reported after (task_newtask comes late) can only bump falsely.
    // So from the moment open() returns, no wrap in the scanning namespace
    // goes uncounted. ns_last_pid is per reader, so this seeds only when the
    // scanning namespace is our own. A pinned counter is seeded the same way
    // for a namespace it has no record of yet.
    let seeded: number | undefined;
    try {
      if (namespace === ownPidNamespace()) {
        const lastNr = readNsLastPid();
        if (handle.seed(namespace, lastNr)) seeded = lastNr;
      }
    } catch (error) {
      handle.close();
      throw error;
    }
    return new Guard(handle, refused, namespace, seeded, pinDir);
  }

  /**
   * Pins this guard's link and maps under `dir`, so the counter keeps
   * counting after this process exits (`pidgen pin`). The directory must
   * exist on a bpffs mount.
   */
  pin(dir: string = this.#pinDir): void {
    this.#handle.pin(dir);
  }

  /** Records in the pinned meta that a task iterator is pinned beside it. */
  recordPinnedIterator(flags: number): void {
    this.#handle.setPinnedIterator(flags);
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * The generation of a PID namespace (default: the scanning namespace), like
   * reading `/proc/pid_gen` there. 0n for a namespace with no allocation
   * since the guard was attached.
   */
  generation(nsInum: number = this.namespace): bigint {
    return this.#handle.read(nsInum)?.generation ?? 0n;
  }

  /** One namespace's full counter, or undefined if it has no record. */
  counter(nsInum: number = this.namespace): NamespaceCounter | undefined {
    const raw = this.#handle.read(nsInum);
    return raw ? toCounter(raw) : undefined;
  }

  /** Every namespace with a record, sorted by inode number. */
  namespaces(): NamespaceCounter[] {
    return this.#handle
      .readAll()
      .map(toCounter)
      .sort((a, b) => a.inum - b.inum);
  }

  /**
   * Health counters of the BPF side. If either moves during a window, the
   * guard cannot vouch for it (a namespace got no record, or a read failed).
   */
  health(): { nsMapFull: bigint; readErrors: bigint; logDrops: bigint } {
    return this.#handle.stats();
  }

  #logUsers = 0;
  #logLock = -1;

  /**
   * Starts logging every PID number taken in the scanning namespace, and
   * every task exit there (each call must be paired with
   * {@link endAllocationLog}). The programs write to the ring only while
   * someone logs, so the fork and exit paths pay nothing between snapshots
   * but one test. Records already in the ring are discarded.
   *
   * A pinned log is one ring for every process that opens the pin, and a
   * ring has one reader: two snapshots draining it would each see half the
   * records. So a pinned guard takes an exclusive lock on the pin directory
   * first, waiting up to `waitMs`.
   */
  beginAllocationLog(waitMs = 10_000): void {
    if (this.#logUsers === 0 && this.pinned) this.#logLock = lockPinDir(this.#pinDir, waitMs);
    if (this.#logUsers++ === 0) {
      this.#handle.setLogNamespace(this.namespace);
      this.#handle.drainLog();
    }
  }

  /**
   * Everything logged since the previous drain, creations and exits, in ring
   * order (the order the programs reserved their records).
   */
  drainAllocationLog(): LogEvent[] {
    return parseLogEvents(this.#handle.drainLog());
  }

  endAllocationLog(): void {
    if (this.#logUsers > 0 && --this.#logUsers === 0) {
      if (!this.closed) this.#handle.setLogNamespace(0);
      if (this.#logLock >= 0) nativeAddon().unlockFile(this.#logLock);
      this.#logLock = -1;
    }
  }

  /**
   * Detaches and unloads everything this process loaded (a pinned counter
   * stays pinned). Safe to call twice.
   */
  close(): void {
    while (this.#logUsers > 0) this.endAllocationLog();
    this.#handle.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Why a pin directory must not be trusted ("owned by uid 65534, mode 0755,
 * not owned by root"), or undefined for one that root owns and alone can
 * write. The rule is src/pin/owner.ts's (untrustedBecause), which `pidgen
 * pin`, `unpin`, `status` and doctor apply; it is restated here because
 * pin/ imports guard/, and guard/ importing pin/ would make the two rooms
 * import each other.
 */
function pinDirDistrust(dir: string): string | undefined {
  let stat;
  try {
    stat = statSync(dir);
  } catch (error) {
    throw fsError('stat', dir, error);
  }
  const mode = stat.mode & 0o7777;
  const why = stat.uid !== 0 ? 'not owned by root' : mode & 0o022 ? `writable by ${mode & 0o002 ? 'others' : 'its group'}` : undefined;
  return why && `owned by uid ${stat.uid}, mode ${mode.toString(8).padStart(4, '0')}, ${why}`;
}

/** Waits (blocking, briefly) for the pinned log's lock; see beginAllocationLog. */
function lockPinDir(dir: string, waitMs: number): number {
  const addon = nativeAddon();
  const deadline = Date.now() + waitMs;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const fd = addon.lockFile(dir);
    if (fd >= 0) return fd;
    if (Date.now() > deadline) {
      throw new PidgenError(`lock ${dir}: another pidgen snapshot is using the pinned allocation log`, {
        code: 'EBUSY',
        op: 'lock pinned log',
        target: dir,
        hint: 'wait for it to finish, or use a private guard (Guard.open({ pinned: "never" }))',
      });
    }
    Atomics.wait(nap, 0, 0, 5);
  }
}
