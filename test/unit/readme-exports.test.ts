// The README's library section is a promise about the package entry: every
// name it lists is importable from 'pidgen', and its examples compile. Both
// are checked from a consumer's side: a project whose node_modules/pidgen is
// this package, importing it by name (the `exports` map, dist/, the .d.ts).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

/** What the README's "The library" section says the package exports. */
function readmeLibrarySection() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## The library\n');
  expect(start, 'README has a "## The library" section').toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);

  const examples = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const imported = examples.flatMap((code) =>
    [...code.matchAll(/import\s*\{([^}]*)\}\s*from\s*'pidgen'/g)].flatMap((m) => m[1]!.split(',').map((n) => n.trim())),
  );

  // The bullets under "Everything is exported from `pidgen`".
  const prose = section.replace(/```[\s\S]*?```/g, '');
  const listStart = prose.indexOf('Everything is exported from `pidgen`');
  expect(listStart, 'the section lists what is exported').toBeGreaterThan(0);
  const bullets = prose
    .slice(listStart)
    .split(/\n\s*\n/)[0]!
    .split(/\n- /)
    .slice(1)
    .map((bullet) => bullet.replace(/\s+/g, ' '));
  const ticked = (text: string) => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

  const values: string[] = [...imported];
  const types: string[] = [];
  /** "`fn(options)`: options `a`, `b`": keys of fn's first parameter. */
  const options: { owner: string; key: string }[] = [];
  for (const bullet of bullets) {
    if (bullet.startsWith('Types:')) {
      types.push(...ticked(bullet));
      continue;
    }
    const optionList = /options ((?:`\w+`(?:, )?)+)/.exec(bullet);
    const rest = optionList ? bullet.replace(optionList[0], '') : bullet;
    const names = ticked(rest).map((token) => token.replace(/\(.*\)$/, ''));
    values.push(...names);
    if (optionList) options.push(...ticked(optionList[1]!).map((key) => ({ owner: names[0]!, key })));
  }
  return { examples, values: [...new Set(values)], types, options };
}

describe('the README library section against the package entry', () => {
  const listed = readmeLibrarySection();
  const consumer = mkdtempSync(join(tmpdir(), 'pidgen-readme-'));
  mkdirSync(join(consumer, 'node_modules'));
  symlinkSync(root, join(consumer, 'node_modules', 'pidgen'));
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  afterAll(() => rmSync(consumer, { recursive: true, force: true }));

  it('finds the names it promises (guards against a parser that silently finds none)', () => {
    expect(listed.values).toEqual(expect.arrayContaining(['snapshot', 'Guard', 'Guard.open', 'TaskIterator.open', 'toPerfetto', 'PidgenError']));
    expect(listed.types).toContain('TaskIteratorOptions');
    expect(listed.options.map((o) => o.key)).toContain('maxAttempts');
    expect(listed.examples.length).toBeGreaterThanOrEqual(2);
  });

  it("every value it lists is exported at run time by `import('pidgen')`", () => {
    const script = `const m = await import('pidgen');
      const names = ${JSON.stringify(listed.values)};
      console.log(JSON.stringify(names.filter((n) => n.split('.').reduce((o, k) => o?.[k], m) === undefined)));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: consumer, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout), 'listed in the README but not exported').toEqual([]);
  });

  it('its examples, the types and the option names it lists type-check against the published .d.ts', () => {
    const heads = [...new Set(listed.values.map((n) => n.split('.')[0]!))];
    const probe = [
      `import { ${heads.join(', ')} } from 'pidgen';`,
      `import type { ${listed.types.join(', ')} } from 'pidgen';`,
      ...listed.values.filter((n) => n.includes('.')).map((n) => `void ${n};`),
      ...listed.types.map((t, i) => `export type Listed${i} = ${t};`),
      ...listed.options.map(
        ({ owner, key }, i) => `export type Option${i} = NonNullable<Parameters<typeof ${owner}>[0]>[${JSON.stringify(key)}];`,
      ),
    ].join('\n');
    const files = ['probe.mts'];
    writeFileSync(join(consumer, 'probe.mts'), `${probe}\n`);
    listed.examples.forEach((code, i) => {
      files.push(`example-${i}.mts`);
      // The examples call the reader's own walk (PIDs to what it read); declare it, nothing else.
      writeFileSync(join(consumer, `example-${i}.mts`), `declare function myProcWalk(): Map<number, unknown>;\n${code}\nexport {};\n`);
    });
    const tsc = spawnSync(
      process.execPath,
      [
        join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
        '--noEmit',
        '--strict',
        '--target', 'es2022',
        '--module', 'nodenext',
        '--moduleResolution', 'nodenext',
        '--lib', 'es2022,esnext.disposable',
        '--typeRoots', join(root, 'node_modules', '@types'),
        '--types', 'node',
        '--skipLibCheck',
        ...files,
      ],
      { cwd: consumer, encoding: 'utf8' },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  });
});
