import { sleep } from "@dray/common";
import { and, eq, inArray, sql } from "drizzle-orm";
import { rowsOf } from "../store/raw-sql.js";
import { targetEntityLocks } from "../store/schema.js";
import type { RunContext } from "./run-context.js";

class LockBusy extends Error {
  constructor(
    readonly holder: string,
    readonly entity: string,
  ) {
    super(`${entity} is locked by ${holder}`);
  }
}

/**
 * Takes the write locks of every target entity of the run, so executions
 * writing the same target entity run one after the other (docs/architecture.md §4, "Running").
 * A lock held by an execution that is no longer queued or in progress is taken
 * over. Waits (and says so in the stage log, once) while another run holds one.
 */
export async function acquireTargetLocks(ctx: RunContext): Promise<void> {
  const environmentId = ctx.settings.targetEnvironmentId;
  const entities = ctx.plan.entities.map((e) => e.entity).sort();
  let announced = false;
  for (;;) {
    const held = await ctx.db
      .transaction(async (tx) => {
        // One statement for every entity, in name order (so runs taking overlapping sets cannot deadlock).
        const taken = rowsOf<{ entity: string }>(
          await tx.execute(sql`
          insert into target_entity_locks (environment_id, entity, execution_id)
          select ${environmentId}::uuid, wanted.entity, ${ctx.executionId}::uuid
            from jsonb_array_elements_text(${JSON.stringify(entities)}::jsonb) as wanted(entity)
           order by wanted.entity
          on conflict (environment_id, entity) do update
            set execution_id = excluded.execution_id, acquired_at = now()
            where target_entity_locks.execution_id = excluded.execution_id
               or not exists (
                 select 1 from executions e
                 where e.id = target_entity_locks.execution_id and e.status in ('queued', 'in_progress'))
          returning entity`),
        );
        const got = new Set(taken.map((r) => r.entity));
        const busy = entities.find((entity) => !got.has(entity));
        if (busy !== undefined) {
          const [holder] = await tx
            .select({ executionId: targetEntityLocks.executionId })
            .from(targetEntityLocks)
            .where(
              and(eq(targetEntityLocks.environmentId, environmentId), eq(targetEntityLocks.entity, busy)),
            );
          // Throwing rolls back the locks taken: all or nothing.
          throw new LockBusy(holder?.executionId ?? "another execution", busy);
        }
        return { blockedBy: undefined, entity: undefined };
      })
      .catch((error) => {
        if (error instanceof LockBusy) return { blockedBy: error.holder, entity: error.entity };
        throw error;
      });
    if (held && !held.blockedBy) return;
    if (!announced && held?.blockedBy) {
      announced = true;
      await ctx.journal.stage({
        processName: "JobRunner",
        state: "processing",
        code: "waiting",
        description: `Waiting for execution ${held.blockedBy}, which is writing ${held.entity} in ${ctx.plan.targetName}`,
      });
    }
    await sleep(500, ctx.signal);
  }
}

/** Releases the run's target locks. */
export async function releaseTargetLocks(
  ctx: Pick<RunContext, "db" | "executionId" | "settings">,
): Promise<void> {
  await ctx.db
    .delete(targetEntityLocks)
    .where(
      and(
        eq(targetEntityLocks.executionId, ctx.executionId),
        inArray(targetEntityLocks.environmentId, [ctx.settings.targetEnvironmentId]),
      ),
    );
}
