/**
 * The order in which a run works through its entities: bounded concurrency,
 * each entity as soon as the ones it depends on are loaded, and a halt signal
 * so that the first failure stops the others at their next batch boundary.
 */
import { DrayError } from "@dray/common";
import type { EntityRunPlan } from "./run-context.js";

/**
 * Runs `fn` over items with at most `limit` at once. The first failure is
 * rethrown once all have stopped: no further item starts, and `halt` (given to
 * each call) fires so the ones running stop at their next batch boundary
 * instead of running to their end.
 */
export async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, halt: AbortSignal) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  const halt = new AbortController();
  let failure: unknown;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, queue.length)) }, async () => {
    while (queue.length && !halt.signal.aborted) {
      const item = queue.shift()!;
      try {
        await fn(item, halt.signal);
      } catch (error) {
        if (halt.signal.aborted) continue;
        failure = error;
        halt.abort(error);
      }
    }
  });
  await Promise.all(workers);
  if (halt.signal.aborted) throw failure;
}

/**
 * Runs `fn` (pass 1 of an entity) over the plan's entities, each as soon as
 * every entity it depends on has finished, at most `limit` at once, in level
 * then name order among those ready. No level waits for the slowest entity of
 * the one before. The first failure is rethrown once all have stopped: no
 * further entity starts, and `halt` fires for the ones running. A plan stored
 * before `dependsOn` existed waits for every entity of a lower level.
 */
export async function inDependencyOrder(
  entities: readonly EntityRunPlan[],
  limit: number,
  fn: (entity: EntityRunPlan, halt: AbortSignal) => Promise<void>,
): Promise<void> {
  const order = [...entities].sort((a, b) => a.level - b.level || (a.entity < b.entity ? -1 : 1));
  const needs = new Map(
    order.map((e) => [
      e.entity,
      e.dependsOn ?? order.filter((other) => other.level < e.level).map((other) => other.entity),
    ]),
  );
  const done = new Set<string>();
  const started = new Set<string>();
  const running = new Set<Promise<void>>();
  const halt = new AbortController();
  let failure: unknown;
  for (;;) {
    for (const e of order) {
      if (halt.signal.aborted || running.size >= Math.max(1, limit)) break;
      if (started.has(e.entity) || !needs.get(e.entity)!.every((d) => done.has(d))) continue;
      started.add(e.entity);
      const task: Promise<void> = fn(e, halt.signal)
        .then(
          () => {
            done.add(e.entity);
          },
          (error: unknown) => {
            if (halt.signal.aborted) return;
            failure = error;
            halt.abort(error);
          },
        )
        .finally(() => running.delete(task));
      running.add(task);
    }
    if (running.size === 0) break;
    await Promise.race(running);
  }
  if (halt.signal.aborted) throw failure;
  const stuck = order.filter((e) => !done.has(e.entity)).map((e) => e.entity);
  if (stuck.length > 0)
    throw new DrayError("internal", `entities whose dependencies never finished: ${stuck.join(", ")}`);
}
