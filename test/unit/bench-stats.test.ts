// The statistics behind every number `pidgen bench` prints: medians that a
// single outlier run cannot move, paired ratios, and the alternating order
// that keeps one tool from always following the same neighbour.
import { describe, expect, it } from 'vitest';
import { median, pairedRatio, roundOrder, summarize } from '../../src/bench/stats.js';

describe('median', () => {
  it('is the middle value of an odd count, whatever the input order', () => {
    expect(median([5])).toBe(5);
    expect(median([9, 1, 5])).toBe(5);
    expect(median([3, 300, 2, 1, 4])).toBe(3);
  });

  it('is the mean of the two middle values of an even count', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([10, 20])).toBe(15);
  });

  it('is not moved by one huge outlier, as a mean would be', () => {
    expect(median([100, 101, 99, 100, 5_000])).toBe(100);
  });

  it('does not reorder the caller\'s array', () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });

  it('refuses an empty list instead of returning NaN', () => {
    expect(() => median([])).toThrow(RangeError);
  });
});

describe('summarize', () => {
  it('keeps the median, the range and every sample', () => {
    expect(summarize([30, 10, 20])).toEqual({ median: 20, min: 10, max: 30, samples: [30, 10, 20] });
  });
});

describe('pairedRatio', () => {
  it('is the median of the per-run ratios, so drift shared by a pair cancels', () => {
    // The machine gets slower run by run; the treated side is always 2% slower.
    const baseline = [100, 150, 200, 250, 300];
    const treated = baseline.map((v) => v * 1.02);
    expect(pairedRatio(treated, baseline)).toBeCloseTo(1.02, 10);
  });

  it('refuses unpaired samples', () => {
    expect(() => pairedRatio([1, 2], [1])).toThrow(RangeError);
  });
});

describe('roundOrder', () => {
  it('runs the tools forward on even rounds and backward on odd ones', () => {
    expect(roundOrder(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c']);
    expect(roundOrder(['a', 'b', 'c'], 1)).toEqual(['c', 'b', 'a']);
    expect(roundOrder(['a', 'b', 'c'], 2)).toEqual(['a', 'b', 'c']);
  });

  it('leaves the tool list itself alone', () => {
    const tools = ['a', 'b'];
    roundOrder(tools, 1);
    expect(tools).toEqual(['a', 'b']);
  });
});
