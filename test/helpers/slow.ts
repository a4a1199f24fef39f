// Time limits written into tests, scaled for slow machines.
//
// PIDGEN_TEST_SLOW=<factor> (default 1) says how many times slower than a
// real machine this one runs the suite. scripts/kernel-test sets it in its
// guest when it falls back to qemu's TCG emulator, which runs node 20 to 30
// times slower. Every spawn timeout, hook or test timeout and deadline a
// test writes down goes through slow(): they are limits that catch a hang,
// never expectations of speed, so a slower machine only moves them out.

function slowFactor(text: string | undefined): number {
  if (text === undefined || text === '') return 1;
  const factor = Number(text);
  if (!Number.isFinite(factor) || factor < 1) throw new Error(`PIDGEN_TEST_SLOW must be a number >= 1, got '${text}'`);
  return factor;
}

export const SLOW_FACTOR = slowFactor(process.env.PIDGEN_TEST_SLOW);

/** A time limit of `ms` on a real machine, scaled by PIDGEN_TEST_SLOW. */
export function slow(ms: number): number {
  return Math.round(ms * SLOW_FACTOR);
}
