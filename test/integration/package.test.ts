// What a consumer gets: `npm pack`, then an install into an empty project
// builds the addon, and `npx pidgen snapshot` works. Without the build
// dependencies, the install script stops with one clear line.
//
// Each install uses its own empty npm cache and talks to the registry, as a
// consumer's first install does: nothing here depends on what earlier
// installs left in ~/.npm, nor on another test of this file having run.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot } from '../helpers/kernel.js';

const root = join(import.meta.dirname, '..', '..');

/** The environment without what `npm test` put there (npm_config_cache,
 * npm_lifecycle_*, ...), so the child npm sees only its own settings. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

describe.runIf(isRoot)('[kernel] the npm package', () => {
  const work = mkdtempSync(join(tmpdir(), 'pidgen-package-'));
  let tarball = '';

  /** A new empty project that allows pidgen's install script, with its own empty npm cache. */
  function newConsumer(name: string): { dir: string; env: NodeJS.ProcessEnv } {
    const dir = join(work, name);
    mkdirSync(dir);
    // npm 11 runs a dependency's install script only when the project allows it.
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module', allowScripts: { pidgen: true } }));
    return { dir, env: cleanEnv({ npm_config_cache: join(work, `${name}-npm-cache`) }) };
  }

  beforeAll(() => {
    const packed = spawnSync('npm', ['pack', '--pack-destination', work, '--json'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 300_000,
      env: cleanEnv({ npm_config_cache: join(work, 'pack-npm-cache') }),
    });
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

  it('installs into an empty project with an empty npm cache, builds the addon, and `npx pidgen snapshot` works', () => {
    const consumer = newConsumer('consumer');
    const install = spawnSync('npm', ['install', tarball], { cwd: consumer.dir, encoding: 'utf8', timeout: 600_000, env: consumer.env });
    expect(install.status, install.stderr).toBe(0);
    expect(existsSync(join(consumer.dir, 'node_modules', 'pidgen', 'build', 'native', 'Release', 'pidgen.node'))).toBe(true);

    const run = spawnSync('npx', ['--offline', 'pidgen', 'snapshot'], {
      cwd: consumer.dir,
      encoding: 'utf8',
      timeout: 60_000,
      maxBuffer: 256 << 20,
      env: consumer.env,
    });
    expect(run.status, run.stderr).toBe(0);
    const snap = JSON.parse(run.stdout) as { schema: string; coherent: boolean; processes: unknown[] };
    expect(snap.schema).toBe('pidgen.snapshot/1');
    expect(snap.processes.length).toBeGreaterThan(0);

    // And the library entry point.
    const lib = spawnSync(process.execPath, ['--input-type=module', '-e', "import('pidgen').then((m) => console.log(typeof m.snapshot, typeof m.Guard.open))"], {
      cwd: consumer.dir,
      encoding: 'utf8',
    });
    expect(lib.stdout.trim()).toBe('function function');
  }, 600_000);

  it('without the build dependencies, the install script stops with one message naming the Debian packages', () => {
    // The script as shipped, from the tarball itself: no install needed.
    const unpacked = join(work, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('tar', ['-xzf', tarball, '-C', unpacked]);
    // A PATH with node and sh only: no clang, bpftool, cmake, make, c++, pkg-config.
    const bin = join(work, 'bare-bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const script = join(unpacked, 'package', 'scripts', 'build-native.mjs');
    const result = spawnSync(join(bin, 'node'), [script, '--force'], { encoding: 'utf8', env: { PATH: bin } });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^pidgen: cannot build the native addon$/m);
    expect(result.stderr).toMatch(/^  install them \(Debian\/Ubuntu, as root\):  apt-get install -y clang .*cmake make g\+\+$/m);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(bin).sort()).toEqual(['node', 'sh']);
    expect(existsSync(join(unpacked, 'package', 'build'))).toBe(false);
  });
});
