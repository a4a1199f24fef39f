/**
 * The C programs shipped in bench/ (population, reference walker, fork
 * benchmark, runstat), compiled at bench time with the system's `cc` into a
 * temporary directory, so a fresh clone needs nothing prebuilt.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PidgenError } from '../errors.js';
import { packageRoot } from '../package.js';

/** Where the bench's C and Python sources live. */
export const BENCH_SOURCE_DIR = join(packageRoot, 'bench');

export const HELPER_NAMES = ['population', 'ref-walker', 'forkbench', 'runstat'] as const;
export type HelperName = (typeof HELPER_NAMES)[number];

/** Absolute paths of the compiled helpers, and of the psutil script. */
export interface BenchHelpers {
  population: string;
  refWalker: string;
  forkbench: string;
  runstat: string;
  psutilScript: string;
}

/** Compiles every helper into `outDir` with `cc -O2 -pthread`; throws ECOMPILE naming the file. */
export function compileHelpers(outDir: string, compiler = process.env.CC || 'cc'): BenchHelpers {
  const built = {} as Record<HelperName, string>;
  for (const name of HELPER_NAMES) {
    const source = join(BENCH_SOURCE_DIR, `${name}.c`);
    const binary = join(outDir, name);
    const result = spawnSync(compiler, ['-O2', '-pthread', '-Wall', '-o', binary, source], { encoding: 'utf8' });
    if (result.error) {
      const code = (result.error as NodeJS.ErrnoException).code ?? 'EIO';
      throw new PidgenError(`compile ${source}: cannot run ${compiler}: ${code}`, {
        code: 'ECOMPILE',
        op: 'compile',
        target: source,
        errnoName: code,
        hint: code === 'ENOENT' ? 'install a C compiler (apt-get install gcc), or set CC' : 'check that CC names a working C compiler',
      });
    }
    if (result.status !== 0) {
      throw new PidgenError(
        `compile ${source}: ${compiler} exited with ${result.status ?? result.signal}: ${result.stderr.trim().split('\n').slice(0, 5).join(' / ')}`,
        { code: 'ECOMPILE', op: 'compile', target: source, hint: 'install the libc headers (apt-get install libc6-dev)' },
      );
    }
    built[name] = binary;
  }
  const psutilScript = join(BENCH_SOURCE_DIR, 'psutil-scan.py');
  if (!existsSync(psutilScript)) {
    throw new PidgenError(`bench helper ${psutilScript}: missing from the package`, { code: 'ENOENT', op: 'find', target: psutilScript });
  }
  return {
    population: built.population,
    refWalker: built['ref-walker'],
    forkbench: built.forkbench,
    runstat: built.runstat,
    psutilScript,
  };
}
