// What a consumer gets: `npm pack` (which builds the prebuilt addon), then an
// install of the tarball into an empty project.
// - On a host with no compiler at all, the install uses the shipped prebuilt,
//   `npx pidgen snapshot` works and `npx pidgen doctor` says "prebuilt".
// - `--build-from-source` builds the addon on the host instead, and says so.
// - Without the build tools, that build stops with one clear message.
//
// Each install has its own project, its own empty npm cache and its own PATH,
// and talks to the registry as a consumer's first install does: nothing here
// depends on what earlier installs left in ~/.npm, nor on another test of this
// file having run. The packed tarball is the one thing they share.
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { inThrowawayGuest, isRoot } from '../helpers/kernel.js';
import { slow } from '../helpers/slow.js';

const root = join(import.meta.dirname, '..', '..');
const PREBUILT = 'prebuilds/linux-x64/node.napi.glibc.node';
// The guard `--guard auto` picks: the BPF guard needs Linux >= 5.12.
const AUTO_GUARD = bpfGuardKernelGap() ? 'cursor' : 'bpf';
// An install from source compiles the addon and its two BPF objects; on a
// loaded 2-core CI machine that takes minutes. Limits, not expectations.
const INSTALL_TIMEOUT = slow(600_000);
const TEST_TIMEOUT = slow(1_200_000);
const PACK_TIMEOUT = slow(900_000);

/** The environment without what `npm test` put there (npm_config_cache,
 * npm_lifecycle_*, ...), so the child npm sees only the settings given here. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

/** Where npm and npx really live (their bin entries are symlinks to these scripts). */
function npmScript(name: 'npm' | 'npx'): string {
  return realpathSync(execFileSync('/bin/sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim());
}

// `npm pack` fetches Debian's libbpf and elfutils sources (scripts/prebuild)
// and each install talks to the npm registry; a scripts/kernel-test guest has
// no network. The package does not depend on the kernel it runs on beyond
// what the other files test there.
const GUEST_SKIP = 'a scripts/kernel-test guest has no network, which npm pack (Debian sources) and npm install (the registry) need';
if (isRoot && inThrowawayGuest) console.warn(`[kernel] the npm package: skipped here: ${GUEST_SKIP}`);

describe.runIf(isRoot && !inThrowawayGuest)('[kernel] the npm package', () => {
  const work = mkdtempSync(join(tmpdir(), 'pidgen-package-'));
  let tarball = '';

  /**
   * A new empty project that allows pidgen's install script (npm 11 runs a
   * dependency's install script only when the project allows it), with its
   * own empty npm cache. `bare`: a PATH of node, npm, npx and sh (npm runs
   * install scripts with the `sh` on PATH), so no clang, cmake, make, g++,
   * bpftool or pkg-config.
   */
  function newConsumer(name: string, options: { bare: boolean }) {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module', allowScripts: { pidgen: true } }));
    const bin = join(work, `${name}-bin`);
    if (options.bare) {
      mkdirSync(bin);
      symlinkSync(process.execPath, join(bin, 'node'));
      symlinkSync(npmScript('npm'), join(bin, 'npm'));
      symlinkSync(npmScript('npx'), join(bin, 'npx'));
      symlinkSync('/bin/sh', join(bin, 'sh'));
    }
    const path = options.bare ? bin : (process.env.PATH ?? '');
    const tool = (name: string) => (options.bare ? join(bin, name) : name);
    const env = cleanEnv({ PATH: path, npm_config_cache: join(work, `${name}-npm-cache`) });
    const run = (command: string, args: string[], extraEnv: Record<string, string> = {}): SpawnSyncReturns<string> =>
      spawnSync(command, args, {
        cwd: dir,
        encoding: 'utf8',
        timeout: INSTALL_TIMEOUT,
        maxBuffer: 256 << 20,
        env: { ...env, ...extraEnv },
      });
    return {
      dir,
      bin,
      installed: join(dir, 'node_modules', 'pidgen'),
      // --foreground-scripts: the install script's own lines reach the output.
      install: (flags: string[] = [], extraEnv: Record<string, string> = {}) =>
        run(tool('npm'), ['install', '--foreground-scripts', tarball, ...flags], extraEnv),
      npx: (args: string[]) => run(tool('npx'), ['--offline', 'pidgen', ...args]),
      node: (args: string[]) => run(tool('node'), args),
    };
  }

  beforeAll(() => {
    const packed = spawnSync('npm', ['pack', '--pack-destination', work, '--json'], {
      cwd: root,
      encoding: 'utf8',
      timeout: PACK_TIMEOUT,
      env: cleanEnv({ npm_config_cache: join(work, 'pack-npm-cache') }),
    });
    expect(packed.status, packed.stderr).toBe(0);
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string }[];
    tarball = join(work, info!.filename);
  }, PACK_TIMEOUT);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('the tarball holds what a consumer needs and the prebuilt linux-x64 addon, no tests or build output, under 5 MB', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const needed of [
      'package/dist/src/index.js',
      'package/dist/src/index.d.ts',
      'package/dist/src/cli/main.js',
      `package/${PREBUILT}`,
      'package/bpf/pidgen.bpf.c',
      'package/bpf/task_iter.bpf.c',
      'package/bpf/pidgen.h',
      'package/bpf/core_types.h',
      'package/native/loader.cc',
      'package/native/CMakeLists.txt',
      'package/CMakeLists.txt',
      'package/binding.gyp',
      'package/scripts/install.mjs',
      'package/scripts/build-native.mjs',
      'package/schema/snapshot-1.json',
      'package/schema/snapshot-2.json',
      'package/proto/perfetto_subset.proto',
    ]) {
      expect(files, needed).toContain(needed);
    }
    expect(files.filter((f) => /^package\/(test|build|node_modules|dist\/test)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /\.(node|bpf\.o|skel\.h)$/.test(f))).toEqual([`package/${PREBUILT}`]);
    expect(statSync(tarball).size).toBeLessThan(5 * 1024 * 1024);
  });

  it('the prebuilt needs nothing Debian 12, Ubuntu 22.04/24.04 and RHEL 9 lack: glibc <= 2.34, no libbpf.so or libelf.so', () => {
    const unpacked = join(work, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('tar', ['-xzf', tarball, '-C', unpacked, `package/${PREBUILT}`]);
    const addon = join(unpacked, 'package', PREBUILT);
    const needed = [...execFileSync('readelf', ['-d', addon], { encoding: 'utf8' }).matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]);
    expect(needed.filter((lib) => !['libc.so.6', 'libm.so.6', 'libz.so.1', 'libstdc++.so.6', 'libgcc_s.so.1', 'ld-linux-x86-64.so.2'].includes(lib))).toEqual([]);
    const symbols = execFileSync('objdump', ['-T', addon], { encoding: 'utf8' });
    const versions = (prefix: string) => [...new Set([...symbols.matchAll(new RegExp(`\\b${prefix}_([0-9.]+)\\b`, 'g'))].map((m) => m[1]!))];
    const newer = (version: string, limit: string) => {
      const [a, b] = [version, limit].map((v) => v.split('.').map(Number));
      for (let i = 0; i < Math.max(a!.length, b!.length); i++) if ((a![i] ?? 0) !== (b![i] ?? 0)) return (a![i] ?? 0) > (b![i] ?? 0);
      return false;
    };
    expect(versions('GLIBC').filter((v) => newer(v, '2.34'))).toEqual([]);
    expect(versions('GLIBCXX').filter((v) => newer(v, '3.4.29'))).toEqual([]); // RHEL 9's gcc 11
    expect(versions('LIBBPF')).toEqual([]);
    expect(versions('ELFUTILS')).toEqual([]);
  });

  it('installs on a host without any compiler by using the prebuilt: `npx pidgen snapshot` works, `npx pidgen doctor` says prebuilt', () => {
    const consumer = newConsumer('prebuilt', { bare: true });
    expect(readdirSync(consumer.bin).sort()).toEqual(['node', 'npm', 'npx', 'sh']);

    const install = consumer.install();
    expect(install.status, install.stderr).toBe(0);
    expect(install.stdout).toContain(`pidgen: using the prebuilt addon ${PREBUILT}`);
    expect(existsSync(join(consumer.installed, 'build'))).toBe(false);

    const snap = consumer.npx(['snapshot']);
    expect(snap.status, snap.stderr).toBe(0);
    const parsed = JSON.parse(snap.stdout) as { schema: string; guard: { kind: string }; processes: unknown[] };
    expect(parsed.schema).toBe('pidgen.snapshot/2');
    expect(parsed.guard.kind).toBe(AUTO_GUARD);
    expect(parsed.processes.length).toBeGreaterThan(0);

    const doctor = consumer.npx(['doctor']);
    expect(doctor.status, doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(new RegExp(`^ok\\s+native addon\\s+loaded, prebuilt for linux-x64 \\(\\S+/${PREBUILT.replaceAll('.', '\\.')}; libbpf \\d`, 'm'));

    // And the library entry point, from the consumer's own code.
    const lib = consumer.node(['--input-type=module', '-e', "import('pidgen').then((m) => console.log(typeof m.snapshot, typeof m.Guard.open, typeof m.TaskIterator.open))"]);
    expect(lib.stdout.trim(), lib.stderr).toBe('function function function');
  }, TEST_TIMEOUT);

  it('PIDGEN_BUILD_FROM_SOURCE=1 builds the addon on the host, and `npx pidgen doctor` says built from source', () => {
    const consumer = newConsumer('from-source', { bare: false });
    const install = consumer.install([], { PIDGEN_BUILD_FROM_SOURCE: '1' });
    expect(install.status, install.stderr).toBe(0);
    expect(install.stdout).toContain('pidgen: building the native addon from source (PIDGEN_BUILD_FROM_SOURCE=1)');
    expect(existsSync(join(consumer.installed, 'build', 'native', 'Release', 'pidgen.node'))).toBe(true);

    const doctor = consumer.npx(['doctor']);
    expect(doctor.status, doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(/^ok\s+native addon\s+loaded, built from source \(\S+\/build\/native\/Release\/pidgen\.node; libbpf \d/m);

    const snap = consumer.npx(['snapshot', '--format', 'table']);
    expect(snap.status, snap.stderr).toBe(0);
    expect(snap.stdout).toMatch(AUTO_GUARD === 'bpf' ? /^guard bpf via /m : /^guard cursor/m);
  }, TEST_TIMEOUT);

  it('`npm install --build-from-source` without the build tools stops with one message naming the Debian packages', () => {
    const consumer = newConsumer('no-tools', { bare: true });
    const install = consumer.install(['--build-from-source']);
    expect(install.status).not.toBe(0);
    expect(install.stderr).toMatch(/^pidgen: cannot build the native addon$/m);
    expect(install.stderr).toMatch(/^  install them \(Debian\/Ubuntu, as root\):  apt-get install -y clang .*cmake make g\+\+$/m);
    expect(install.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(consumer.installed, 'build', 'native', 'Release', 'pidgen.node'))).toBe(false);
  }, TEST_TIMEOUT);
});
