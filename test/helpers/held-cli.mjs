// Runs the built `pidgen` CLI with a test hold installed, for the teardown
// tests: `node held-cli.mjs <after-walk|before-rename> snapshot ...` stops at
// that point, says so on stderr, and waits for a signal. The hold goes
// through the internal hooks module (dist/src/snapshot/hooks.js), which the
// package entry does not export and nothing in pidgen sets.
import { join } from 'node:path';
import { installSnapshotHooks } from '../../dist/src/snapshot/hooks.js';

const [point, ...args] = process.argv.slice(2);
if (point !== 'after-walk' && point !== 'before-rename') throw new Error(`held-cli: unknown hold point '${point}'`);
const hold = () => {
  process.stderr.write(`pidgen: test hold: ${point}\n`);
  // A pending promise alone would let Node exit; a timer keeps it waiting.
  return new Promise(() => setInterval(() => {}, 1 << 30));
};
installSnapshotHooks(point === 'after-walk' ? { afterFirstWalk: hold } : { beforeRename: hold });
const cli = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');
process.argv = [process.argv[0], cli, ...args];
await import(cli);
