/** Pure helpers of the routing bench: bounded concurrency and latency summaries. */

/** Runs `task(0)` … `task(count - 1)`, at most `limit` at a time; rejects with the first failure. */
export async function forEachLimited(
  count: number,
  limit: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (error) {
        failed ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, worker));
  if (failed !== undefined) throw failed;
}

/** Latencies in milliseconds, summarised. */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank quantile of an ascending array (`q` in 0…1); NaN when empty. */
export function nearestRank(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** p50, p90, p99 (nearest rank), max and mean of `values` (milliseconds). */
export function summarise(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: nearestRank(sorted, 0.5),
    p90: nearestRank(sorted, 0.9),
    p99: nearestRank(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
    mean: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : Number.NaN,
  };
}

/**
 * The target of command `i` among `agents` agents, so that consecutive commands
 * go to different agents and each agent gets commands/agents of them: a stride
 * coprime with the agent count walks every agent before repeating one.
 */
export function targetOf(i: number, agents: number): number {
  let stride = Math.max(1, Math.floor(agents * 0.618));
  while (gcd(stride, agents) !== 1) stride++;
  return (i * stride) % agents;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
