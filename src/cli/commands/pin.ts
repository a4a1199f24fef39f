/** `pidgen pin`, `pidgen unpin`, `pidgen status`: the persistent counter. */
import { DEFAULT_PIN_DIR } from '../../guard/guard.js';
import { pin, status, unpin } from '../../pin/pin.js';
import { renderCounters } from './gen.js';

export function runPin(options: { verbose?: boolean }, out: (text: string) => void): void {
  const result = pin({ verbose: options.verbose ?? false });
  if (result.mountedBpffs) out('mounted bpffs at /sys/fs/bpf\n');
  out(
    result.already
      ? `already pinned at ${result.info.dir} since ${result.info.attachedAt.toISOString()} via ${result.info.attach}\n`
      : `pinned at ${result.info.dir} via ${result.info.attach}${result.info.iterator ? ', with the task iterator' : ''}; the counter keeps counting until \`pidgen unpin\`\n`,
  );
}

export function runUnpin(out: (text: string) => void): void {
  const result = unpin(DEFAULT_PIN_DIR);
  if (!result.existed) {
    out(`nothing pinned at ${DEFAULT_PIN_DIR}\n`);
    return;
  }
  if (!result.wasPinned) {
    out(
      result.removedDir
        ? `nothing pinned at ${DEFAULT_PIN_DIR}; removed the empty directory (${result.owner})\n`
        : `nothing pinned at ${DEFAULT_PIN_DIR}: the directory (${result.owner}) holds ${result.leftAlone.join(', ')}, not pidgen's; left alone\n`,
    );
    return;
  }
  out(`unpinned ${DEFAULT_PIN_DIR}: removed ${result.removed.join(', ')}\n`);
  if (result.leftAlone.length) {
    out(`left alone (not pidgen's): ${result.leftAlone.join(', ')}; the directory (${result.owner}) stays\n`);
  }
}

export function runStatus(options: { json?: boolean }, out: (text: string) => void): void {
  const result = status(DEFAULT_PIN_DIR);
  if (options.json) {
    out(
      `${JSON.stringify(
        {
          pinned: result.pinned,
          ...(result.info
            ? {
                dir: result.info.dir,
                layoutVersion: result.info.layoutVersion,
                attach: result.info.attach,
                iterator: result.info.iterator ?? null,
                since: result.info.attachedAt.toISOString(),
                sinceBoottimeNs: result.info.attachedBoottimeNs.toString(),
              }
            : {}),
          ...(result.counters
            ? {
                scanningNs: result.scanningNs,
                namespaces: result.counters.map((c) => ({
                  inum: c.inum,
                  generation: c.generation.toString(),
                  allocations: c.allocations.toString(),
                  lastNr: c.lastNr,
                })),
              }
            : {}),
        },
        null,
        2,
      )}\n`,
    );
    return;
  }
  if (!result.pinned || !result.info) {
    out(`not pinned (nothing at ${DEFAULT_PIN_DIR}); \`pidgen pin\` keeps the counter across runs\n`);
    return;
  }
  out(`pinned at ${result.info.dir} since ${result.info.attachedAt.toISOString()} via ${result.info.attach}\n`);
  out(
    result.info.iterator
      ? `task iterator pinned too (argv from ${result.info.iterator.cmdlineFrom}): snapshots load nothing\n\n`
      : 'no task iterator pinned: snapshots load their own, or walk /proc\n\n',
  );
  out(renderCounters(result.counters ?? [], result.scanningNs ?? 0));
}
