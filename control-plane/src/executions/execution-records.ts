/**
 * Organisation-scoped look-ups shared by the execution services: a pipeline or
 * execution of another organisation is `not_found`, exactly like a missing one
 * (and so is an id that is not a UUID).
 */
import { DrayError } from "@dray/common";
import { and, eq } from "drizzle-orm";
import type { Principal } from "../auth/roles.js";
import type { Db } from "../store/db.js";
import { isUuid } from "../store/ids.js";
import { apiTokens, executions, type pipelines } from "../store/schema.js";

/** A stored execution. */
export type ExecutionRow = typeof executions.$inferSelect;
/** A stored pipeline. */
export type PipelineRow = typeof pipelines.$inferSelect;
/** Who started or cancelled an execution. */
export interface Actor {
  tokenId: string;
  tokenName: string;
  role: string;
}

/** The `not_found` error of an execution. */
export function executionNotFound(id: string): DrayError {
  return new DrayError("not_found", `execution ${id} was not found`);
}

/** The organisation's execution, or `not_found`. */
export async function requireExecution(db: Db, organisationId: string, id: string): Promise<ExecutionRow> {
  if (!isUuid(id)) throw executionNotFound(id);
  const [row] = await db
    .select()
    .from(executions)
    .where(and(eq(executions.id, id), eq(executions.organisationId, organisationId)))
    .limit(1);
  if (!row) throw executionNotFound(id);
  return row;
}

/** The caller as recorded in `triggeredBy` / `cancelledBy` (with the token's name). */
export async function actorOf(db: Db, principal: Principal): Promise<Actor> {
  const [token] = await db
    .select({ name: apiTokens.name })
    .from(apiTokens)
    .where(eq(apiTokens.id, principal.tokenId))
    .limit(1);
  return { tokenId: principal.tokenId, tokenName: token?.name ?? principal.tokenId, role: principal.role };
}
