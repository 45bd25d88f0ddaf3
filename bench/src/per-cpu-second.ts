/**
 * Values per CPU-second of `fn` over `values` (CPU time, so a loaded machine
 * does not skew it), after a short warm-up. For the transformers' speed
 * figures, which tests print and do not assert.
 */
export function perCpuSecond(fn: (v: string) => unknown, values: readonly string[], n = 100_000): number {
  for (let i = 0; i < 2000; i++) fn(values[i % values.length] as string);
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(values[i % values.length] as string);
  const used = process.cpuUsage(start);
  return Math.round(n / ((used.user + used.system) / 1e6));
}
