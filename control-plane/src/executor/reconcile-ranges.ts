/**
 * The range logic of reconcile by digests (reconcile.ts), apart from any I/O:
 * which key ranges a set of boundaries makes, and what to do with a range
 * once both sides' counts and digests are known — nothing when they agree,
 * compare its keys when it is small, else split it again, finer.
 */
import type { KeyRangeDigest } from "./agent-port.js";

/** A range of keys in key order: (after, until]; null = open at that end. */
export interface KeyRange {
  after: readonly string[] | null;
  until: readonly string[] | null;
}

/** A range with at most this many rows on either side has its keys compared. */
export const LEAF_KEYS = 10_000;

/** Rows per range of the first split, over the whole entity. */
export const TOP_SPLIT_EVERY = 50_000;

/** How many ranges a differing range is split into, about. */
export const SPLIT_FANOUT = 20;

/** Largest `splitEvery` an agent takes. */
export const MAX_SPLIT_EVERY = 1_000_000;

/** Splits below the first at most; a range still differing deeper has its keys compared. */
export const MAX_SPLIT_DEPTH = 8;

/**
 * The ranges that ascending boundaries make of `range`:
 * `(after, b1], (b1, b2], …, (bn, until]` — always `boundaries.length + 1`.
 */
export function rangesOf(range: KeyRange, boundaries: readonly (readonly string[])[]): KeyRange[] {
  const edges = [range.after, ...boundaries, range.until];
  return edges.slice(1).map((until, i) => ({ after: edges[i]!, until }));
}

/** True when two sides' digests of a range disagree (count or digest). */
export function rangeDiffers(source: KeyRangeDigest, target: KeyRangeDigest): boolean {
  return source.count !== target.count || source.digest !== target.digest;
}

/** What to do with one range. */
export type RangeStep =
  | { kind: "same" }
  | { kind: "keys" }
  | {
      kind: "split";
      /** Rows per sub-range, for the side that picks the boundaries. */
      splitEvery: number;
      /** The side with more rows in the range picks the boundaries (the other may have none). */
      picker: "source" | "target";
    };

/**
 * The next step for a range whose digests are known, at split depth `depth`
 * (0 for the ranges of the first split): `same` when they agree; `keys` when
 * either side has at most {@link LEAF_KEYS} rows, the depth is exhausted, or
 * `canSplit` is false (the last split made no progress); else `split` into
 * about {@link SPLIT_FANOUT} ranges by the side with more rows.
 */
export function nextStep(
  source: KeyRangeDigest,
  target: KeyRangeDigest,
  depth: number,
  canSplit = true,
): RangeStep {
  if (!rangeDiffers(source, target)) return { kind: "same" };
  const larger = Math.max(source.count, target.count);
  if (larger <= LEAF_KEYS || depth >= MAX_SPLIT_DEPTH || !canSplit) return { kind: "keys" };
  return {
    kind: "split",
    splitEvery: Math.min(MAX_SPLIT_EVERY, Math.max(1, Math.ceil(larger / SPLIT_FANOUT))),
    picker: target.count > source.count ? "target" : "source",
  };
}
