/**
 * A bounded cache in front of a transformer, for columns whose values repeat
 * (foreign keys, statuses, cities): a repeated value costs a map lookup
 * instead of a keyed hash. It watches its own hit rate and switches itself
 * off on columns of distinct values (primary keys, emails), where it would
 * only add work. Transformers are pure functions of the value, so a cached
 * output is the output.
 */
import type { ValueTransform } from "./transform-rows.js";

/** Tuning of {@link memoizeTransform}. */
export interface MemoOptions {
  /** Entries kept; the cache is emptied when full (default 8,192). */
  maxEntries?: number;
  /** Values longer than this (in UTF-16 units) bypass the cache (default 256). */
  maxValueLength?: number;
  /** Lookups between hit-rate checks (default 16,384). */
  sample?: number;
  /** Below this share of hits in a sample, caching stops for good (default 0.2). */
  minHitRate?: number;
}

/** A memoized transformer, with counters for tests and metrics. */
export interface MemoizedTransform extends ValueTransform {
  /** Lookups answered from the cache. */
  readonly hits: () => number;
  /** False once the cache switched itself off. */
  readonly active: () => boolean;
}

/**
 * `apply` with a cache of its outputs by input. Errors are not cached (the
 * transformer throws again for the same value).
 *
 * @example const city = memoizeTransform(compile("city", {}, key, "text"));
 */
export function memoizeTransform(apply: ValueTransform, options: MemoOptions = {}): MemoizedTransform {
  const maxEntries = options.maxEntries ?? 8192;
  const maxValueLength = options.maxValueLength ?? 256;
  const sample = options.sample ?? 16_384;
  const minHitRate = options.minHitRate ?? 0.2;
  let cache: Map<string, string | null> | undefined = new Map();
  let hits = 0;
  let sampleHits = 0;
  let sampleLookups = 0;
  const memoized = ((value: string) => {
    if (!cache || value.length > maxValueLength) return apply(value);
    const cached = cache.get(value);
    sampleLookups++;
    if (cached !== undefined || cache.has(value)) {
      hits++;
      sampleHits++;
      return cached ?? null;
    }
    const out = apply(value);
    if (cache.size >= maxEntries) cache.clear();
    cache.set(value, out);
    if (sampleLookups >= sample) {
      if (sampleHits < sampleLookups * minHitRate) cache = undefined;
      sampleHits = 0;
      sampleLookups = 0;
    }
    return out;
  }) as MemoizedTransform;
  Object.defineProperties(memoized, {
    hits: { value: () => hits },
    active: { value: () => cache !== undefined },
  });
  return memoized;
}
