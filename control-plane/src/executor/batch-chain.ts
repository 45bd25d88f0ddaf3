/** A batch's place in its entity's keyset: it covers (cursorFrom, cursorTo]. */
export interface ChainLink {
  seq: number;
  cursorFrom: string[] | null;
  cursorTo: string[] | null;
}

/**
 * Orders batches left in progress along their cursor chain, starting at the
 * entity's checkpoint: the batch starting there first, then the one starting
 * where it ends, and so on. A batch that does not continue the chain comes
 * next in `seq` order.
 *
 * @example
 * chainOrder([{ seq: 3, cursorFrom: ["20"], cursorTo: ["30"] }, { seq: 2, cursorFrom: ["10"], cursorTo: ["20"] }], ["10"])
 * // seq 2, then seq 3
 */
export function chainOrder<T extends ChainLink>(batches: readonly T[], checkpoint: string[] | null): T[] {
  const key = (c: string[] | null) => JSON.stringify(c);
  const left = [...batches].sort((a, b) => a.seq - b.seq);
  const ordered: T[] = [];
  let at = key(checkpoint);
  while (left.length > 0) {
    const i = left.findIndex((b) => key(b.cursorFrom) === at);
    const nextBatch = left.splice(Math.max(i, 0), 1)[0]!;
    ordered.push(nextBatch);
    at = key(nextBatch.cursorTo);
  }
  return ordered;
}
