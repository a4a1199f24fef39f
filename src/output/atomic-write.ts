/**
 * Writing `-o FILE` so a reader sees either the old file or the whole new
 * one, never a partial snapshot, even across a crash or Ctrl-C.
 *
 * The data goes to a temp file in the target's directory (rename(2) is only
 * atomic within one filesystem), is fsynced, and is renamed over the target;
 * then the directory is fsynced so the rename itself survives a power cut
 * (ext4 and xfs do not promise that without it).
 *
 * Signals: Node's default SIGINT/SIGTERM action kills the process without
 * running `finally` blocks, which would strand a temp file. So every temp file
 * that exists or is being created is tracked here, and the CLI's SIGINT and
 * SIGTERM handlers call {@link removePendingTempFiles} before exiting. A write
 * interrupted that way never renames, so the target keeps its old contents.
 */

import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { open, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fsError, PidgenError } from '../errors.js';

/** Temp files of writes in progress: created, or about to be. */
const pendingTempFiles = new Set<string>();

/**
 * Writes `data` to `path` atomically: temp file `.<base>.<pid>.<random>.tmp`
 * in the same directory, fsync, rename over `path`, fsync the directory. An
 * existing target's permission bits are kept (a snapshot holds every argv on
 * the host, so a user may have made it private). On any error the temp file
 * is removed and a PidgenError naming `path`, the step and the errno is thrown;
 * the target is then unchanged.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { beforeRename?: () => Promise<void> } = {},
): Promise<void> {
  const target = resolve(path);
  const directory = dirname(target);
  const tempPath = join(directory, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  pendingTempFiles.add(tempPath);

  // A device, FIFO or socket (`-o /dev/null`, `-o /dev/stdout`, a named
  // pipe) must not be replaced by a rename: write into it instead.
  const existing = await stat(target).catch(() => undefined);
  if (existing && !existing.isFile() && !existing.isDirectory()) {
    pendingTempFiles.delete(tempPath);
    try {
      await writeFile(target, data);
    } catch (error) {
      throw fsError('write', target, error);
    }
    return;
  }

  let step = 'create temp file';
  let file: FileHandle | undefined;
  try {
    const mode = await existingMode(target);
    // 'wx' is O_CREAT|O_EXCL: never follow a symlink planted at the temp name.
    file = await open(tempPath, 'wx', mode ?? 0o666);
    checkNotAborted(tempPath);
    // open() applies the umask; an existing target's mode should survive as is.
    if (mode !== undefined) {
      step = 'set mode of temp file';
      await file.chmod(mode);
    }
    step = 'write temp file';
    await file.writeFile(data);
    step = 'fsync temp file';
    await file.sync();
    step = 'close temp file';
    await file.close();
    file = undefined;
    checkNotAborted(tempPath);
    // Test seam: the temp file is complete and the target untouched here.
    await options.beforeRename?.();
    checkNotAborted(tempPath);
    step = 'rename temp file over target';
    await rename(tempPath, target);
    pendingTempFiles.delete(tempPath);
    step = 'fsync directory';
    await fsyncDirectory(directory);
  } catch (error) {
    await file?.close().catch(() => {});
    if (pendingTempFiles.delete(tempPath) || error instanceof WriteAborted) {
      await rm(tempPath, { force: true }).catch(() => {});
    }
    throw writeError(path, step, error);
  }
}

/**
 * Removes the temp files of every write in progress, synchronously, so it can
 * run in a signal handler just before `process.exit()`. The CLI calls it on
 * SIGINT and SIGTERM. Writes it interrupts reject instead of renaming, so the
 * target is left as it was. Returns the temp paths it removed.
 */
export function removePendingTempFiles(): string[] {
  const removed: string[] = [];
  for (const tempPath of pendingTempFiles) {
    pendingTempFiles.delete(tempPath);
    try {
      unlinkSync(tempPath);
      removed.push(tempPath);
    } catch {
      // ENOENT: not created yet, or already renamed into place. The write
      // sees it was aborted and removes the file if its open() lands later.
    }
  }
  return removed;
}

class WriteAborted extends Error {
  constructor() {
    super('interrupted: temp file removed by removePendingTempFiles() (SIGINT/SIGTERM)');
    this.name = 'WriteAborted';
  }
}

function checkNotAborted(tempPath: string): void {
  if (!pendingTempFiles.has(tempPath)) throw new WriteAborted();
}

async function existingMode(target: string): Promise<number | undefined> {
  try {
    const info = await stat(target);
    return info.isFile() ? info.mode & 0o7777 : undefined;
  } catch {
    // Missing (the usual case) or unreadable: the rename will tell.
    return undefined;
  }
}

async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems (e.g. some FUSE and network mounts) cannot fsync a
    // directory; the rename is done, durability is all that is uncertain.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
  } finally {
    await handle.close();
  }
}

function writeError(path: string, step: string, error: unknown): PidgenError {
  if (error instanceof WriteAborted) {
    return new PidgenError(`write ${path}: ${error.message}; target left unchanged`, {
      code: 'EINTR',
      op: 'write',
      target: path,
    }, { cause: error });
  }
  const err = error as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : 'EIO';
  // Node's message repeats the code and the temp path: "EISDIR: illegal operation on a directory, rename '...' -> '...'".
  const why = /^[A-Z0-9]+: ([^,]+)/.exec(err?.message ?? '')?.[1] ?? err?.message ?? String(error);
  return new PidgenError(`write ${path}: ${step} failed: ${code} (${why})`, {
    code,
    op: 'write',
    target: path,
    errnoName: code,
    ...(typeof err?.errno === 'number' ? { errno: Math.abs(err.errno) } : {}),
  }, { cause: error });
}
