/** Where pidgen's own package lives, for its addon, schema and version. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The same code runs from src/ (vitest) and from dist/src/ (the CLI), so walk
// up to the package.json instead of counting levels.
function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'pidgen') {
      return dir;
    }
    if (dirname(dir) === dir) throw new Error(`pidgen: package.json not found above ${start}`);
  }
}

/** Absolute path of the installed pidgen package. */
export const packageRoot = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

/** pidgen's version, from package.json. */
export const packageVersion = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string })
  .version;
