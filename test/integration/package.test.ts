// What a consumer gets: `npm pack`, then an install into an empty project,
// offline (only npm's cache), builds the addon, and `npx pidgen snapshot`
// works. Without the build dependencies, install stops with one clear line.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot } from '../helpers/kernel.js';

const root = join(import.meta.dirname, '..', '..');
const npm = (args: string[], cwd: string) =>
  spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 300_000, env: { ...process.env, npm_config_update_notifier: 'false' } });

describe.runIf(isRoot)('[kernel] the npm package', () => {
  const work = mkdtempSync(join(tmpdir(), 'pidgen-package-'));
  const consumer = join(work, 'consumer');
  let tarball = '';

  beforeAll(() => {
    const packed = npm(['pack', '--pack-destination', work, '--json'], root);
    expect(packed.status, packed.stderr).toBe(0);
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string }[];
    tarball = join(work, info!.filename);
  }, 300_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('the tarball holds what a consumer needs, and no tests, fixtures or build output', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const needed of [
      'package/dist/src/index.js',
      'package/dist/src/index.d.ts',
      'package/dist/src/cli/main.js',
      'package/bpf/pidgen.bpf.c',
      'package/bpf/task_iter.bpf.c',
      'package/bpf/pidgen.h',
      'package/bpf/core_types.h',
      'package/native/loader.cc',
      'package/native/CMakeLists.txt',
      'package/CMakeLists.txt',
      'package/binding.gyp',
      'package/scripts/build-native.mjs',
      'package/schema/snapshot-1.json',
      'package/proto/perfetto_subset.proto',
    ]) {
      expect(files, needed).toContain(needed);
    }
    expect(files.filter((f) => /^package\/(test|build|node_modules|dist\/test)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /\.(node|bpf\.o|skel\.h)$/.test(f))).toEqual([]);
  });

  it('installs into an empty project offline, builds the addon, and `npx pidgen snapshot` works', () => {
    mkdirSync(consumer);
    // npm 11 runs a dependency's install script only when the project allows it.
    writeFileSync(
      join(consumer, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module', allowScripts: { pidgen: true } }),
    );
    const install = npm(['install', '--offline', '--no-audit', '--no-fund', tarball], consumer);
    expect(install.status, install.stderr).toBe(0);
    expect(existsSync(join(consumer, 'node_modules', 'pidgen', 'build', 'native', 'Release', 'pidgen.node'))).toBe(true);

    const run = spawnSync('npx', ['--offline', 'pidgen', 'snapshot'], { cwd: consumer, encoding: 'utf8', timeout: 60_000, maxBuffer: 256 << 20 });
    expect(run.status, run.stderr).toBe(0);
    const snap = JSON.parse(run.stdout) as { schema: string; coherent: boolean; processes: unknown[] };
    expect(snap.schema).toBe('pidgen.snapshot/2');
    expect(snap.processes.length).toBeGreaterThan(0);

    // And the library entry point.
    const lib = spawnSync(process.execPath, ['--input-type=module', '-e', "import('pidgen').then((m) => console.log(typeof m.snapshot, typeof m.Guard.open))"], {
      cwd: consumer,
      encoding: 'utf8',
    });
    expect(lib.stdout.trim()).toBe('function function');
  });

  it('without the build dependencies, the install script stops with one message naming the Debian packages', () => {
    // A PATH with node and sh only: no clang, bpftool, cmake, make, c++, pkg-config.
    const bin = join(work, 'bare-bin');
    mkdirSync(bin, { recursive: true });
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const script = join(consumer, 'node_modules', 'pidgen', 'scripts', 'build-native.mjs');
    const result = spawnSync(join(bin, 'node'), [script, '--force'], { encoding: 'utf8', env: { PATH: bin } });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^pidgen: cannot build the native addon$/m);
    expect(result.stderr).toMatch(/^  install them \(Debian\/Ubuntu, as root\):  apt-get install -y clang .*cmake make g\+\+$/m);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(bin).sort()).toEqual(['node', 'sh']);
  });
});
