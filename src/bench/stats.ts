/**
 * The statistics `pidgen bench` reports. Medians, not means: a 2-core VM
 * has outliers (a timer tick, a page reclaim) that a mean would carry into
 * every number.
 */

/** Summary of one tool's samples. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

/** The median; of an even count, the mean of the middle two. Throws on none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  if (sorted.length % 2 === 1) return sorted[middle]!;
  return (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function summarize(samples: readonly number[]): Summary {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), samples: [...samples] };
}

/**
 * The median of paired ratios treated[i] / baseline[i]. Each pair was
 * measured back to back, so drift over the run (thermal, a noisy neighbour)
 * cancels within a pair instead of landing on one side.
 */
export function pairedRatio(treated: readonly number[], baseline: readonly number[]): number {
  if (treated.length !== baseline.length) {
    throw new RangeError(`paired ratio needs equal counts, got ${treated.length} and ${baseline.length}`);
  }
  return median(treated.map((value, i) => value / baseline[i]!));
}

/**
 * The tool order of round `round`: forward on even rounds, backward on odd
 * ones, so no tool always runs right after the same neighbour (whose cache
 * footprint or freed memory it would inherit).
 */
export function roundOrder<T>(tools: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...tools] : [...tools].reverse();
}
