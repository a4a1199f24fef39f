#!/usr/bin/env node
/** The `pidgen` command line. Exit codes: 0 ok, 1 failure, 2 usage, 3 not coherent. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { packageVersion } from '../package.js';
// Commands are imported when they run: a snapshot need not load the bench,
// and JSON output need not load protobufjs. Node's start-up is part of what
// a CLI user pays for every snapshot.
import type { BenchCommandOptions } from '../bench/command.js';
import type { SnapshotCommandOptions } from './commands/snapshot.js';
import { EXIT_FAILURE, EXIT_OK, reportError } from './report.js';

const out = (text: string | Uint8Array) => {
  process.stdout.write(text);
};

function positiveInteger(name: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1 || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from 1 to ${max}, got '${value}'`);
    }
    return n;
  };
}

const verboseOption = () => new Option('-v, --verbose', "print libbpf's and the verifier's messages on stderr");

export function buildProgram(): Command {
  const program = new Command('pidgen')
    .description('Coherent process snapshots on unpatched Linux, bracketed by a BPF-kept PID generation counter.')
    .version(packageVersion, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('snapshot')
    .description(
      'Take a snapshot of every process and thread in this PID namespace, bracketed by the guard, ' +
        'and say whether it is coherent (JSON when stdout is not a terminal, a table when it is).',
    )
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'jsonl', 'table', 'perfetto']))
    .option('-o, --output <file>', 'write to FILE atomically (temporary file, then rename)')
    .option('--append', 'with --format perfetto: add the baseline to the trace in FILE (kept; written ahead of its packets)')
    .option('--no-threads', 'processes only, no threads')
    .addOption(
      new Option('--max-attempts <n>', 'walk plus repair passes before giving up')
        .argParser(positiveInteger('--max-attempts', 100))
        .default(3),
    )
    .option('--require-coherent', 'exit 3 when the snapshot is not coherent')
    .addOption(
      new Option(
        '--guard <guard>',
        'bpf: the BPF guard (pinned or loaded now) or fail; cursor: unprivileged, conservative; none: the naive walk, never coherent; auto: bpf, else cursor',
      )
        .choices(['auto', 'bpf', 'cursor', 'none'])
        .default('auto'),
    )
    .addOption(
      new Option('--source <source>', 'bpf-iter: one BPF task-iterator pass (fast, privileged); procfs: the /proc walk; auto: bpf-iter where it loads')
        .choices(['auto', 'bpf-iter', 'procfs'])
        .default('auto'),
    )
    .addOption(verboseOption())
    .action(async (options: SnapshotCommandOptions) => {
      const { runSnapshot } = await import('./commands/snapshot.js');
      process.exitCode = await runSnapshot(options, out);
    });

  program
    .command('gen')
    .description(
      "Print the current PID namespace's generation, like `cat /proc/pid_gen` would. " +
        'The counter counts from the moment pidgen attaches.',
    )
    .option('--all', 'every PID namespace seen: inode, generation, allocations, last PID')
    .option('--json', 'print JSON instead of text')
    .option('--watch', "stay attached and print a line each time a namespace's generation changes, until Ctrl-C")
    .addOption(
      new Option('--interval <ms>', 'with --watch: how often to read the counters').argParser(positiveInteger('--interval', 60_000)).default(100),
    )
    .addOption(verboseOption())
    .action(async (options: { all?: boolean; json?: boolean; watch?: boolean; interval: number; verbose?: boolean }) => {
      const { runGen } = await import('./commands/gen.js');
      await runGen(options, out);
    });

  program
    .command('doctor')
    .description('Report what this host supports and which guard pidgen will use; every failed check gets advice.')
    .option('--json', 'print JSON instead of text')
    .addOption(verboseOption())
    .action(async (options: { json?: boolean; verbose?: boolean }) => {
      const { runDoctorCommand } = await import('./commands/doctor.js');
      if (!runDoctorCommand(options, out)) process.exitCode = EXIT_FAILURE;
    });

  program
    .command('bench')
    .description(
      'Measure what a snapshot costs, against ps -eLo, psutil and a reference C walker, on a population of known size ' +
        'in a child PID namespace; and what the guard costs on fork. Needs root.',
    )
    .option('--tasks <list>', 'task counts to measure, a comma list', '1000,5000,20000')
    .option('--threads-per-process <n>', 'threads in each process of the population', '4')
    .option('--runs <n>', 'measured runs per tool after a warm-up run; the report gives the median', '5')
    .option('--forks <n>', 'fork+exit+wait per run of the guard-overhead benchmark; 0 skips it', '4000')
    .option('--json <file>', 'also write the results as JSON (schema pidgen.bench/1)')
    .option('--svg <file>', 'also write an SVG chart of time against task count')
    .action(async (options: BenchCommandOptions) => {
      const { runBenchCommand } = await import('../bench/command.js');
      process.exitCode = await runBenchCommand(options, out);
    });

  program
    .command('pin')
    .description(
      'Load the counter and pin it under /sys/fs/bpf/pidgen/, so it keeps counting after this command exits ' +
        '(a persistent /proc/pid_gen). Idempotent. gen and snapshot then use it and load nothing.',
    )
    .addOption(verboseOption())
    .action(async (options: { verbose?: boolean }) => (await import('./commands/pin.js')).runPin(options, out));

  program
    .command('unpin')
    .description('Remove everything `pidgen pin` pinned under /sys/fs/bpf/pidgen/, and nothing else.')
    .action(async () => (await import('./commands/pin.js')).runUnpin(out));

  program
    .command('status')
    .description('Whether the counter is pinned, since when, its attach point, and the counters.')
    .option('--json', 'print JSON instead of text')
    .action(async (options: { json?: boolean }) => (await import('./commands/pin.js')).runStatus(options, out));

  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  if (argv.length <= 2) {
    program.outputHelp({ error: true });
    return 2;
  }
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (error) {
    return reportError(error);
  }
}

process.exitCode = await main(process.argv);
