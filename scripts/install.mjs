#!/usr/bin/env node
// npm's `install` hook. Uses the prebuilt addon shipped in prebuilds/ when it
// loads on this host; otherwise (another architecture or libc, a glibc older
// than the prebuilt needs, or `npm install --build-from-source`) builds it
// from source with scripts/build-native.mjs, which names the Debian packages
// to install when build tools are missing.
//
// The prebuilt is found the way the runtime finds it (node-gyp-build, the
// prebuildify layout), and is really loaded in a child process: only the
// dynamic loader knows whether this host's libraries satisfy it.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

// PIDGEN_BUILD_FROM_SOURCE=1, or the convention node-gyp-build and
// prebuild-install read: `npm install --build-from-source` (npm 11 passes it
// on as npm_config_build_from_source, with a warning that a later npm will
// not), or `--build-from-source=pidgen` for this package only.
const fromSource = process.env.PIDGEN_BUILD_FROM_SOURCE === '1'
  ? 'PIDGEN_BUILD_FROM_SOURCE=1'
  : ['true', 'pidgen'].includes(process.env.npm_config_build_from_source ?? '')
    ? '--build-from-source'
    : undefined;

function prebuiltThatLoads() {
  let prebuilt;
  try {
    prebuilt = require('node-gyp-build').resolve(root);
  } catch (error) {
    // node-gyp-build says which platform, arch, libc and ABI it looked for.
    return { reason: `no prebuilt addon matches this host (${error.message.split('\n')[0].replace(/^No native build was found for /, '')})` };
  }
  const probe = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', prebuilt], { encoding: 'utf8' });
  if (probe.status !== 0) {
    const why = (probe.stderr.split('\n').find((line) => /^Error:/.test(line)) ?? probe.stderr.trim()).replace(/^Error: /, '');
    return { reason: `the prebuilt addon ${relative(root, prebuilt)} does not load here: ${why}` };
  }
  return { prebuilt };
}

if (!fromSource) {
  const { prebuilt, reason } = prebuiltThatLoads();
  if (prebuilt) {
    process.stdout.write(`pidgen: using the prebuilt addon ${relative(root, prebuilt)}\n`);
    process.exit(0);
  }
  process.stdout.write(`pidgen: ${reason}; building it from source\n`);
} else {
  process.stdout.write(`pidgen: building the native addon from source (${fromSource})\n`);
}

const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { stdio: 'inherit' });
process.exit(build.status ?? 1);
