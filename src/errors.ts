/**
 * Errors pidgen throws. Every error names the operation, where it happened
 * (attach point, map or path) and, when the kernel said no, the errno name, so
 * a user can act on it without a stack trace.
 */

/** Details carried by a {@link PidgenError}. */
export interface PidgenErrorDetails {
  /** Machine-readable cause: an errno name (`EPERM`) or a pidgen code (`ENOBTF`, `ENOATTACH`, `ENOADDON`). */
  code: string;
  /** The operation that failed, e.g. `load`, `attach`, `map lookup`, `read`. */
  op: string;
  /** Positive errno, when the kernel refused. */
  errno?: number;
  /** errno as a name (`EPERM`). */
  errnoName?: string;
  /** Attach point, map name or path the operation was on. */
  target?: string;
  /** libbpf and verifier lines captured during a failed load or attach. */
  log?: string;
  /** One line telling the user what to do about it. */
  hint?: string;
}

/** The error class of everything pidgen throws on purpose, native side included. */
export class PidgenError extends Error implements PidgenErrorDetails {
  readonly code: string;
  readonly op: string;
  readonly errno?: number;
  readonly errnoName?: string;
  readonly target?: string;
  readonly log?: string;
  readonly hint?: string;

  constructor(message: string, details: PidgenErrorDetails, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PidgenError';
    this.code = details.code;
    this.op = details.op;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.errnoName !== undefined) this.errnoName = details.errnoName;
    if (details.target !== undefined) this.target = details.target;
    if (details.log !== undefined) this.log = details.log;
    if (details.hint !== undefined) this.hint = details.hint;
  }
}

/** A bad command line or option value: the CLI prints usage and exits 2. */
export class UsageError extends PidgenError {
  constructor(message: string) {
    super(message, { code: 'EUSAGE', op: 'parse arguments' });
    this.name = 'UsageError';
  }
}

/** Wraps a Node fs error (ENOENT, EACCES, ...) as a PidgenError naming the path. */
export function fsError(op: string, path: string, error: unknown): PidgenError {
  const err = error as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : 'EIO';
  return new PidgenError(`${op} ${path}: ${code}${err?.message ? ` (${stripNodePrefix(err.message)})` : ''}`, {
    code,
    op,
    target: path,
    errnoName: code,
    ...(typeof err?.errno === 'number' ? { errno: Math.abs(err.errno) } : {}),
  }, { cause: error });
}

// Node's messages repeat the code and path: "ENOENT: no such file or directory, open '/x'".
function stripNodePrefix(message: string): string {
  const m = /^[A-Z0-9]+: ([^,]+)/.exec(message);
  return m?.[1] ?? message;
}
