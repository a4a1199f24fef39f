// `pidgen bench` options: defaults, and a usage error (exit 2) for values
// that cannot be benchmarked, before anything is forked.
import { describe, expect, it } from 'vitest';
import { benchSettings, DEFAULT_TASKS, parseTaskCounts } from '../../src/bench/command.js';
import { UsageError } from '../../src/errors.js';

describe('--tasks', () => {
  it('takes one count or a comma list, and measures them smallest first without repeats', () => {
    expect(parseTaskCounts('5000')).toEqual([5000]);
    expect(parseTaskCounts('20000, 1000,5000,1000')).toEqual([1000, 5000, 20000]);
    expect(parseTaskCounts('20_000')).toEqual([20000]);
  });

  it('refuses what is not a positive integer list', () => {
    for (const bad of ['', 'abc', '0', '-5', '1.5', '1000,', ',1000', '5000000']) {
      expect(() => parseTaskCounts(bad), bad).toThrow(UsageError);
    }
  });
});

describe('benchSettings', () => {
  it('defaults to 1k, 5k and 20k tasks, 4 threads per process, 5 runs and 4,000 forks', () => {
    expect(benchSettings({})).toEqual({ tasks: DEFAULT_TASKS, threadsPerProcess: 4, runs: 5, forks: 4000 });
    expect(DEFAULT_TASKS).toEqual([1000, 5000, 20000]);
  });

  it('passes the output files through, and --forks 0 skips the fork benchmark', () => {
    expect(benchSettings({ tasks: '200', runs: 1, forks: 0, json: 'r.json', svg: 'r.svg' })).toEqual({
      tasks: [200],
      threadsPerProcess: 4,
      runs: 1,
      forks: 0,
      json: 'r.json',
      svg: 'r.svg',
    });
  });

  it('takes counts as the decimal text commander passes', () => {
    expect(benchSettings({ runs: '7', forks: '0', threadsPerProcess: '2' })).toMatchObject({ runs: 7, forks: 0, threadsPerProcess: 2 });
    expect(() => benchSettings({ runs: '7x' })).toThrow(UsageError);
  });

  it('refuses zero runs, zero threads and fractional values with a usage error', () => {
    expect(() => benchSettings({ runs: 0 })).toThrow(/--runs must be an integer from 1/);
    expect(() => benchSettings({ threadsPerProcess: 0 })).toThrow(UsageError);
    expect(() => benchSettings({ forks: 1.5 })).toThrow(UsageError);
  });
});
