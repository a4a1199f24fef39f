// Compiles the TypeScript once before any test, so CLI tests run the same
// dist/ a user runs, never a stale one.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], {
    stdio: 'inherit',
  });
  if (!existsSync(join(root, 'build', 'native', 'Release', 'pidgen.node'))) {
    throw new Error('native addon not built: run scripts/setup (or npm run build:native)');
  }
}
