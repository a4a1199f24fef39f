// Runs the built CLI exactly as a user would: a separate node process.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { slow } from './slow.js';

export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { asUser?: number } = {}): CliResult {
  const command = options.asUser !== undefined ? 'setpriv' : process.execPath;
  const argv =
    options.asUser !== undefined
      ? [`--reuid=${options.asUser}`, `--regid=${options.asUser}`, '--clear-groups', process.execPath, CLI, ...args]
      : [CLI, ...args];
  const result = spawnSync(command, argv, { encoding: 'utf8', timeout: slow(60_000), maxBuffer: 256 << 20 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export function spawnCli(args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}
