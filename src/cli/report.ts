/** How the CLI ends: exit codes (0 ok, 1 failure, 2 usage, 3 not coherent), and errors a user can act on. */
import { CommanderError } from 'commander';
import { PidgenError, UsageError } from '../errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_COHERENT = 3;

/**
 * Prints an error as `pidgen: <what>` plus a hint line, never a stack trace
 * for errors pidgen expects; returns the exit code to use.
 */
export function reportError(error: unknown, write: (text: string) => void = (t) => process.stderr.write(t)): number {
  if (error instanceof CommanderError) {
    // Commander already printed its message and the usage line.
    return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (error instanceof UsageError) {
    write(`pidgen: ${error.message}\n(run 'pidgen --help' for usage)\n`);
    return EXIT_USAGE;
  }
  if (error instanceof PidgenError) {
    write(`pidgen: ${error.message}\n`);
    if (error.hint) write(`hint: ${error.hint}\n`);
    if (error.log && process.env.PIDGEN_VERBOSE) write(error.log.endsWith('\n') ? error.log : `${error.log}\n`);
    return EXIT_FAILURE;
  }
  // A bug, not a condition: keep the stack so it can be reported.
  write(`pidgen: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT_FAILURE;
}
