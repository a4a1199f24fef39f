/** `pidgen gen`: the generation counter, as `cat /proc/pid_gen` would show it. */
import { Guard, type NamespaceCounter } from '../../guard/guard.js';
import { renderTable } from '../table.js';

export interface GenOptions {
  all?: boolean;
  json?: boolean;
  watch?: boolean;
  interval: number;
  verbose?: boolean;
}

function counterJson(c: NamespaceCounter, scanning: number) {
  return {
    inum: c.inum,
    scanning: c.inum === scanning,
    generation: c.generation.toString(),
    allocations: c.allocations.toString(),
    lastNr: c.lastNr,
    bumpedAtNs: c.bumpedAtNs.toString(),
  };
}

/** The `--all` table: one row per namespace, the scanning one marked with *. */
export function renderCounters(counters: readonly NamespaceCounter[], scanning: number): string {
  return renderTable(
    ['NS INODE', 'GENERATION', 'ALLOCATIONS', 'LAST PID'],
    counters.map((c) => [
      `${c.inum}${c.inum === scanning ? ' *' : ''}`,
      c.generation.toString(),
      c.allocations.toString(),
      String(c.lastNr),
    ]),
    ['left', 'right', 'right', 'right'],
  );
}

export async function runGen(options: GenOptions, out: (text: string) => void): Promise<void> {
  const guard = Guard.open({ verbose: options.verbose ?? false });
  if (guard.pinned) {
    process.stderr.write(`pidgen: using the pinned counter (attached via ${guard.attach}; \`pidgen status\` says since when)\n`);
  }
  if (options.verbose) {
    const refused = guard.refused.map((r) => `${r.attach}: ${r.code}`).join(', ');
    process.stderr.write(`pidgen: attached via ${guard.attach}${refused ? ` (refused: ${refused})` : ''}\n`);
  }
  try {
    if (options.watch) return await watch(guard, options, out);
    if (options.all) {
      const counters = guard.namespaces();
      if (options.json) {
        out(
          `${JSON.stringify(
            {
              attach: guard.attach,
              pinned: guard.pinned,
              refused: guard.refused.map((r) => ({ attach: r.attach, code: r.code })),
              scanningNs: guard.namespace,
              namespaces: counters.map((c) => counterJson(c, guard.namespace)) },
            null,
            2,
          )}\n`,
        );
      } else {
        out(renderCounters(counters, guard.namespace));
      }
      return;
    }
    const generation = guard.generation();
    out(options.json ? `${JSON.stringify({ inum: guard.namespace, generation: generation.toString() })}\n` : `${generation}\n`);
  } finally {
    guard.close();
  }
}

/**
 * Stays attached and prints a line whenever a namespace's generation moves,
 * until SIGINT or SIGTERM. Polling the map coalesces bumps that land within
 * one interval into one line, with the delta shown.
 */
function watch(guard: Guard, options: GenOptions, out: (text: string) => void): Promise<void> {
  const seen = new Map<number, bigint>(guard.namespaces().map((c) => [c.inum, c.generation]));
  process.stderr.write(
    `pidgen: watching ${seen.size} PID namespace(s) via ${guard.attach}; Ctrl-C to stop\n`,
  );
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      try {
        for (const c of guard.namespaces()) {
          const before = seen.get(c.inum) ?? 0n;
          if (c.generation === before) continue;
          seen.set(c.inum, c.generation);
          const at = new Date().toISOString();
          if (options.json) {
            out(`${JSON.stringify({ at, ...counterJson(c, guard.namespace), previous: before.toString() })}\n`);
          } else {
            out(
              `${at} ns ${c.inum}${c.inum === guard.namespace ? ' (scanning)' : ''} generation ${before} -> ${c.generation} (+${c.generation - before}) last pid ${c.lastNr}\n`,
            );
          }
        }
      } catch (error) {
        stop();
        reject(error);
      }
    }, options.interval);
    const stop = () => {
      clearInterval(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
    const onSignal = () => {
      stop();
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
