// Builds the recorder (recorder.bpf.c -> object -> skeleton -> loader) into
// build/test-recorder/, the way the package builds its own programs, and only
// when a source is newer than the binary. Generated files stay out of git.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { arch } from 'node:os';
import { join } from 'node:path';

const here = import.meta.dirname;
const root = join(here, '..', '..');
export const RECORDER_BUILD_DIR = join(root, 'build', 'test-recorder');
const SOURCES = ['recorder.bpf.c', 'recorder.c', 'recorder.h', 'kernel_types.h'].map((f) => join(here, f));

/** Debian keeps bpftool in /usr/sbin, which not every PATH has. */
function bpftool(): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const path = join(dir, 'bpftool');
    if (dir && existsSync(path)) return path;
  }
  throw new Error('build recorder: bpftool not found (install it: apt-get install bpftool)');
}

function run(what: string, command: string, args: string[]): Buffer {
  try {
    return execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const e = error as { stderr?: Buffer; message: string };
    throw new Error(`build recorder: ${what} failed: ${e.stderr?.toString() || e.message}`);
  }
}

/** Path of the built recorder binary; builds it if needed. */
export function buildRecorder(): string {
  const binary = join(RECORDER_BUILD_DIR, 'recorder');
  const newest = Math.max(...SOURCES.map((f) => statSync(f).mtimeMs));
  if (existsSync(binary) && statSync(binary).mtimeMs >= newest) return binary;
  mkdirSync(RECORDER_BUILD_DIR, { recursive: true });
  const target = arch() === 'arm64' ? 'arm64' : arch() === 'x64' ? 'x86' : arch();
  const multiarch = arch() === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  const object = join(RECORDER_BUILD_DIR, 'recorder.bpf.o');
  const skeleton = join(RECORDER_BUILD_DIR, 'recorder.skel.h');
  // -mcpu=v3: atomics (the sequence number and the counters).
  run('clang -target bpf recorder.bpf.c', 'clang', [
    '-g', '-O2', '-Wall', '-target', 'bpf', '-mcpu=v3', `-D__TARGET_ARCH_${target}`,
    `-I/usr/include/${multiarch}`, '-I', here, '-c', join(here, 'recorder.bpf.c'), '-o', object,
  ]);
  writeFileSync(`${skeleton}.tmp`, run('bpftool gen skeleton', bpftool(), ['gen', 'skeleton', object, 'name', 'recorder_bpf']));
  renameSync(`${skeleton}.tmp`, skeleton);
  // libbpf.so: Debian 12's libbpf.a is not PIC, and cc links PIE executables by default.
  run('cc recorder.c', 'cc', ['-O2', '-Wall', '-Wextra', '-I', RECORDER_BUILD_DIR, '-I', here, join(here, 'recorder.c'), '-lbpf', '-o', `${binary}.tmp`]);
  renameSync(`${binary}.tmp`, binary);
  return binary;
}
