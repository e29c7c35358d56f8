// bench/args: option parsing the benchmarks share.

/** An integer option in min..max, or an error that names the option and the range. */
export function int(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max}`);
  return n;
}
