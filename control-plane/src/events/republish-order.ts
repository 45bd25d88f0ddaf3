/** A stored execution event, identified by its execution and `seq`. */
export interface EventKey {
  executionId: string;
  seq: number;
}

/**
 * Which claimed events may be published now without overtaking an older one.
 * `claimed` are the events this replica locked; `unpublished` every event
 * still unpublished in the same executions (as far as the claimed seqs), read
 * without locks. Per execution, it keeps the claimed events in `seq` order up
 * to the first unpublished event that is not claimed (locked by another
 * replica, or by a live publish): the rest wait for a later pass. Pure.
 *
 * @example
 * inOrderPrefix([{ executionId: "a", seq: 2 }], [{ executionId: "a", seq: 1 }, { executionId: "a", seq: 2 }]) // []
 */
export function inOrderPrefix<T extends EventKey>(
  claimed: readonly T[],
  unpublished: readonly EventKey[],
): T[] {
  const byExecution = new Map<string, Map<number, T>>();
  for (const c of claimed) {
    const m = byExecution.get(c.executionId) ?? new Map<number, T>();
    byExecution.set(c.executionId, m);
    m.set(c.seq, c);
  }
  const pending = new Map<string, number[]>();
  for (const u of unpublished) {
    const list = pending.get(u.executionId) ?? [];
    pending.set(u.executionId, list);
    list.push(u.seq);
  }
  const out: T[] = [];
  for (const [executionId, mine] of byExecution) {
    const seqs = [...new Set([...(pending.get(executionId) ?? []), ...mine.keys()])].sort((a, b) => a - b);
    const last = Math.max(...mine.keys());
    for (const seq of seqs) {
      if (seq > last) break;
      const event = mine.get(seq);
      if (!event) break;
      out.push(event);
    }
  }
  return out;
}
