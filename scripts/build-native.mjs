#!/usr/bin/env node
// The one native build: checks the build dependencies, then runs cmake-js on
// CMakeLists.txt (which includes native/CMakeLists.txt) into build/native. `npm install` runs this (package.json
// "install"), and binding.gyp delegates here, so nothing is built twice.
//
// Usage: node scripts/build-native.mjs [--debug] [--force]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'build', 'native');
const args = new Set(process.argv.slice(2));
const config = args.has('--debug') ? 'Debug' : 'Release';
const addon = join(outDir, config, 'pidgen.node');

function fail(lines) {
  process.stderr.write(`pidgen: cannot build the native addon\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
  process.exit(1);
}

if (process.platform !== 'linux') {
  fail([`pidgen needs Linux (BPF and /proc); this is ${process.platform}.`]);
}

// Each build dependency, how to find it, and the Debian package that has it.
// /bin/sh by its path: the PATH of an install may hold no shell at all.
const onPath = (cmd) =>
  spawnSync('/bin/sh', ['-c', `command -v ${cmd} || test -x /usr/sbin/${cmd} || test -x /sbin/${cmd}`], {
    stdio: 'ignore',
  }).status === 0;
const checks = [
  { what: 'clang (compiles the BPF program)', pkg: 'clang', ok: () => onPath('clang') },
  { what: 'bpftool (generates the BPF skeleton)', pkg: 'bpftool', ok: () => onPath('bpftool') },
  {
    what: 'libbpf headers and libbpf.so',
    pkg: 'libbpf-dev',
    ok: () => existsSync('/usr/include/bpf/libbpf.h') && spawnSync('pkg-config', ['--exists', 'libbpf']).status === 0,
  },
  { what: 'libelf (libbpf links it)', pkg: 'libelf-dev', ok: () => spawnSync('pkg-config', ['--exists', 'libelf']).status === 0 },
  { what: 'pkg-config', pkg: 'pkg-config', ok: () => onPath('pkg-config') },
  { what: 'cmake', pkg: 'cmake', ok: () => onPath('cmake') },
  { what: 'make', pkg: 'make', ok: () => onPath('make') },
  { what: 'a C++ compiler', pkg: 'g++', ok: () => onPath('c++') || onPath('g++') },
];
const missing = checks.filter((c) => !c.ok());
if (missing.length > 0) {
  const pkgs = [...new Set(missing.map((c) => c.pkg))];
  fail([
    `missing: ${missing.map((c) => c.what).join('; ')}`,
    `install them (Debian/Ubuntu, as root):  apt-get install -y ${pkgs.join(' ')}`,
    'then run the install again.',
  ]);
}

// Skip when the addon is newer than every input (a second `npm ci` or
// `scripts/setup` run costs nothing); --force rebuilds anyway.
// Every source of native/ and bpf/ is an input, read from the folders so a
// new header (bpf/core_fixes.bpf.h was once missed here) cannot be left out;
// the bpftrace scripts are not built.
const inputs = [
  'CMakeLists.txt',
  ...['native', 'bpf'].flatMap((dir) =>
    readdirSync(join(root, dir))
      .filter((name) => /\.(c|cc|h|txt)$/.test(name))
      .map((name) => `${dir}/${name}`),
  ),
];
if (!args.has('--force') && existsSync(addon)) {
  const built = statSync(addon).mtimeMs;
  if (inputs.every((f) => !existsSync(join(root, f)) || statSync(join(root, f)).mtimeMs <= built)) {
    process.stdout.write(`pidgen: native addon is up to date (${addon})\n`);
    process.exit(0);
  }
}

const require = createRequire(import.meta.url);
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  fail(['cmake-js is not installed: run `npm ci` (or `npm install`) in the package first.']);
}
const build = spawnSync(
  process.execPath,
  [cmakeJs, 'compile', '--directory', root, '--out', outDir, '--config', config, ...(args.has('--debug') ? ['--debug'] : [])],
  { cwd: root, stdio: 'inherit' },
);
if (build.status !== 0) fail([`cmake-js failed (exit ${build.status ?? build.signal}); the lines above say why.`]);
if (!existsSync(addon)) fail([`the build finished but ${addon} is missing.`]);
process.stdout.write(`pidgen: built ${addon}\n`);
