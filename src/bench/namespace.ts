/**
 * Runs one bench job as PID 1 of a fresh child PID namespace (with its own
 * mount namespace and /proc), so the tools scan exactly the bench's
 * population and the host's pid_max and ns_last_pid are never touched.
 *
 * Cleanup does not depend on anyone's good behaviour: when a namespace's
 * PID 1 exits, the kernel SIGKILLs every task in it (zap_pid_ns_processes).
 * The chain is
 *   node (here) → setpriv --pdeathsig KILL → unshare --kill-child → node inside.js (PID 1)
 * so if this process dies, even by SIGKILL, unshare gets SIGKILL (its parent
 * died), which SIGKILLs PID 1 (`--kill-child`), which ends the namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { PidgenError } from '../errors.js';
import { packageRoot } from '../package.js';
import type { Job, Reply } from './job.js';

/** The built scripts the namespace runs (global-setup and `npm run build` make them). */
export const BUILT_BENCH_DIR = join(packageRoot, 'dist', 'src', 'bench');
export const INSIDE_SCRIPT = join(BUILT_BENCH_DIR, 'inside.js');

export class NamespaceRun {
  readonly #child: ChildProcess;
  readonly #reply: Promise<Reply>;

  private constructor(job: Job, describe: string) {
    const argv = [
      '--pdeathsig', 'KILL', '--',
      'unshare', '--pid', '--fork', '--mount', '--mount-proc', '--kill-child',
      process.execPath, INSIDE_SCRIPT, JSON.stringify(job),
    ];
    // stderr is inherited: the run's progress lines go straight to the user.
    this.#child = spawn('setpriv', argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    this.#child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
    this.#reply = new Promise<Reply>((resolve, reject) => {
      this.#child.on('error', (error: NodeJS.ErrnoException) => {
        reject(
          new PidgenError(`${describe}: cannot run setpriv: ${error.code ?? error.message}`, {
            code: error.code ?? 'EIO',
            op: 'spawn',
            target: 'setpriv',
            hint: 'setpriv and unshare come with util-linux (apt-get install util-linux)',
          }),
        );
      });
      this.#child.on('close', (code, signal) => {
        const text = Buffer.concat(chunks).toString('utf8').trim();
        const last = text.slice(text.lastIndexOf('\n') + 1);
        if (code === 0 && last.startsWith('{')) {
          try {
            resolve(JSON.parse(last) as Reply);
            return;
          } catch {
            // Reported below as a failed run.
          }
        }
        reject(
          new PidgenError(
            `${describe}: the run in the child PID namespace ${signal ? `was killed by ${signal}` : `exited with ${code}`}` +
              `${last && !last.startsWith('{') ? ` (${last})` : ''}; its messages are above`,
            { code: 'EBENCH', op: 'bench', target: describe },
          ),
        );
      });
    });
  }

  /** Starts `job` in a new child PID namespace. */
  static start(job: Job, describe: string): NamespaceRun {
    return new NamespaceRun(job, describe);
  }

  reply(): Promise<Reply> {
    return this.#reply;
  }

  /** Ends the run and with it every task in its namespace. Safe to call twice. */
  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}
