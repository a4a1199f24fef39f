// The shape of src/, drawn from its imports: the model is the ground floor,
// sources and outputs never reach up into the algorithm's folder, and no two
// folders import each other in a circle. A new import that breaks this is a
// design question, not a lint nit.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/**
 * The room a file is in: its top folder under src/. Of the files at the top,
 * index.ts is the package entry (above everything), and the others
 * (errors.ts, package.ts) are shared basics (below everything but the model).
 */
function folderOf(file: string): string {
  const path = relative(SRC, file.replace(/\.js$/, '.ts'));
  if (!path.includes('/')) return path === 'index.ts' ? 'entry' : 'basics';
  return path.slice(0, path.indexOf('/'));
}

/** folder -> folders it imports from (type imports included: they are design arrows too). */
function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of files(SRC)) {
    const from = folderOf(file);
    const edges = graph.get(from) ?? new Set<string>();
    graph.set(from, edges);
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:import|export)[^'"]*?from\s+'(\.[^']+)'|import\('(\.[^']+)'\)/g)) {
      const target = resolve(dirname(file), m[1] ?? m[2]!);
      const to = folderOf(target);
      if (to !== from) edges.add(to);
    }
  }
  return graph;
}

describe('src/ structure', () => {
  const graph = folderGraph();

  it('the model imports nothing of pidgen: it is the floor everything else stands on', () => {
    expect([...(graph.get('model') ?? [])]).toEqual([]);
  });

  it('no source and no output imports the algorithm (snapshot/)', () => {
    for (const folder of ['source', 'output', 'procfs', 'iter', 'model']) {
      expect([...(graph.get(folder) ?? [])], folder).not.toContain('snapshot');
    }
  });

  it('no two folders import each other, directly or around a circle', () => {
    const cycles: string[] = [];
    const visit = (node: string, path: string[]) => {
      for (const next of graph.get(node) ?? []) {
        if (next === path[0]) cycles.push([...path, next].join(' -> '));
        else if (!path.includes(next) && next > path[0]!) visit(next, [...path, next]);
      }
    };
    for (const node of graph.keys()) visit(node, [node]);
    expect(cycles).toEqual([]);
  });
});
