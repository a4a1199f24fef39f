import { defineConfig } from 'vitest/config';

// Integration tests load BPF programs into the real kernel and fork real
// process trees; running files one at a time keeps their PID namespaces and
// CPU use from disturbing each other on a 2-core machine.
// bpftool lives in /usr/sbin on Debian, which not every PATH holds.
const path = [...new Set([...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'])]
  .filter(Boolean)
  .join(':');

export default defineConfig({
  test: {
    env: { PATH: path },
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
