/**
 * Environments of an organisation: create (with its first enrollment token),
 * list, read, update, delete. Every function is scoped to one organisation: an
 * environment of another organisation is `not_found`, exactly like a missing one.
 * Callers check roles first.
 */
import { DrayError } from "@dray/common";
import { and, asc, eq, or } from "drizzle-orm";
import { decodeCursor, keysetAfter, keysetColumns, keysetOrderBy, pageOf } from "../api/pagination.js";
import { isUuid, newId } from "../store/ids.js";
import type { Db } from "../store/open-store.js";
import { isUniqueViolation } from "../store/raw-sql.js";
import { environments, pipelines } from "../store/schema.js";
import { type IssuedEnrollmentToken, issueEnrollmentToken } from "./enrollment.js";
import { environmentKeyset } from "./environments-keyset.js";
import { environmentSearchCondition, parseEnvironmentSort } from "./environments-query.js";

/** A stored environment. */
export type EnvironmentRow = typeof environments.$inferSelect;

/** Fields of a new environment. */
export interface CreateEnvironmentInput {
  name: string;
  platform: "postgres" | "mysql";
  application?: string | null | undefined;
  url?: string | null | undefined;
  protected?: boolean | undefined;
}

/** Fields an update may change; `null` clears application or url. */
export interface UpdateEnvironmentInput {
  name?: string | undefined;
  application?: string | null | undefined;
  url?: string | null | undefined;
  protected?: boolean | undefined;
}

/** The `not_found` error for an environment the caller may not see or that does not exist. */
export function environmentNotFound(id: string): DrayError {
  return new DrayError("not_found", `environment ${id} was not found`);
}

function duplicateName(name: string): DrayError {
  return new DrayError(
    "already_exists",
    `an environment named "${name}" already exists in this organisation`,
    {
      details: { name },
    },
  );
}

/** Rejects URLs carrying a password: the url field is a label, never a credential. */
function assertNoCredentials(url: string | null | undefined): void {
  if (!url) return;
  let password = "";
  try {
    password = new URL(url).password;
  } catch {
    return; // free text such as "db01.internal:5432" is fine
  }
  if (password) {
    throw new DrayError(
      "invalid_argument",
      "url must not contain a password: it is shown to every user of the organisation",
      {
        details: { issues: [{ path: "url", message: "must not contain a password" }] },
      },
    );
  }
}

/**
 * Creates an environment and its first enrollment token (valid `ttlMs`).
 * Throws `invalid_argument` for a platform not supported yet and
 * `already_exists` for a name taken in the organisation.
 */
export async function createEnvironment(
  db: Db,
  organisationId: string,
  input: CreateEnvironmentInput,
  options: { enrollmentTokenTtlMs: number; now: Date },
): Promise<{ environment: EnvironmentRow; enrollment: IssuedEnrollmentToken }> {
  if (input.platform !== "postgres") {
    throw new DrayError(
      "invalid_argument",
      `platform "${input.platform}" is not supported yet: use "postgres"`,
      {
        details: { issues: [{ path: "platform", message: "only postgres is supported yet" }] },
      },
    );
  }
  assertNoCredentials(input.url);
  const { now } = options;
  try {
    return await db.transaction(async (tx) => {
      const [environment] = await tx
        .insert(environments)
        .values({
          id: newId(),
          organisationId,
          name: input.name,
          platform: input.platform,
          application: input.application ?? null,
          url: input.url ?? null,
          protected: input.protected ?? false,
          createdAt: now,
          updatedAt: now,
        })
        .returning();
      const enrollment = await issueEnrollmentToken(tx, environment!.id, options.enrollmentTokenTtlMs, now);
      return { environment: environment!, enrollment };
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw duplicateName(input.name);
    throw error;
  }
}

/** The organisation's environment with this id, or undefined. */
export async function findEnvironment(
  db: Pick<Db, "select">,
  organisationId: string,
  id: string,
): Promise<EnvironmentRow | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await db
    .select()
    .from(environments)
    .where(and(eq(environments.id, id), eq(environments.organisationId, organisationId)))
    .limit(1);
  return row;
}

/** The organisation's environment with this id; `not_found` otherwise. */
export async function getEnvironment(db: Db, organisationId: string, id: string): Promise<EnvironmentRow> {
  const row = await findEnvironment(db, organisationId, id);
  if (!row) throw environmentNotFound(id);
  return row;
}

/** Which page of a list: at most `limit` items, after the `cursor` of the previous page. */
export interface PageRequest {
  limit: number;
  cursor?: string | undefined;
}

/**
 * A page of the organisation's environments matching `search` (name,
 * application or url, case-insensitive), in `sort` order (see
 * environments-query.ts), with the cursor of the next page (null on the last).
 * Keyset pagination: pages neither repeat nor skip rows when others are added.
 * Throws `invalid_argument` for a malformed cursor or one of another sort.
 */
export async function listEnvironments(
  db: Db,
  organisationId: string,
  query: { search?: string | undefined; sort?: string | undefined },
  page: PageRequest,
): Promise<{ environments: EnvironmentRow[]; next: string | null }> {
  const sort = parseEnvironmentSort(query.sort);
  const keys = environmentKeyset(sort);
  const list = `environments:${sort}`;
  const after =
    page.cursor === undefined ? undefined : keysetAfter(keys, decodeCursor(page.cursor, list, keys.length));
  const rows = await db
    .select({ row: environments, position: keysetColumns(keys) })
    .from(environments)
    .where(
      and(eq(environments.organisationId, organisationId), environmentSearchCondition(query.search), after),
    )
    .orderBy(...keysetOrderBy(keys))
    .limit(page.limit + 1);
  const { items, next } = pageOf(rows, page.limit, list, (r) => r.position);
  return { environments: items.map((r) => r.row), next };
}

/** Updates the given fields; `already_exists` when renaming onto a taken name. */
export async function updateEnvironment(
  db: Db,
  organisationId: string,
  id: string,
  patch: UpdateEnvironmentInput,
  now: Date,
): Promise<EnvironmentRow> {
  if (!isUuid(id)) throw environmentNotFound(id);
  assertNoCredentials(patch.url);
  const set: Partial<typeof environments.$inferInsert> = { updatedAt: now };
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.application !== undefined) set.application = patch.application;
  if (patch.url !== undefined) set.url = patch.url;
  if (patch.protected !== undefined) set.protected = patch.protected;
  try {
    const [row] = await db
      .update(environments)
      .set(set)
      .where(and(eq(environments.id, id), eq(environments.organisationId, organisationId)))
      .returning();
    if (!row) throw environmentNotFound(id);
    return row;
  } catch (error) {
    if (isUniqueViolation(error)) throw duplicateName(patch.name ?? "");
    throw error;
  }
}

/** Deletes an environment (its enrollment tokens and agents go with it). */
export async function deleteEnvironment(db: Db, organisationId: string, id: string): Promise<void> {
  if (!isUuid(id)) throw environmentNotFound(id);
  const users = await db
    .select({ name: pipelines.name })
    .from(pipelines)
    .where(
      and(
        eq(pipelines.organisationId, organisationId),
        or(eq(pipelines.sourceEnvironmentId, id), eq(pipelines.targetEnvironmentId, id)),
      ),
    )
    .orderBy(asc(pipelines.name));
  if (users.length > 0) {
    throw new DrayError(
      "failed_precondition",
      `the environment is used by pipeline(s) ${users.map((u) => `"${u.name}"`).join(", ")}: delete or change them first`,
      { details: { pipelines: users.map((u) => u.name) } },
    );
  }
  const deleted = await db
    .delete(environments)
    .where(and(eq(environments.id, id), eq(environments.organisationId, organisationId)))
    .returning({ id: environments.id });
  if (deleted.length === 0) throw environmentNotFound(id);
}

/** Issues a new enrollment token for an existing environment (re-pairing its agent). */
export async function renewEnrollmentToken(
  db: Db,
  organisationId: string,
  id: string,
  options: { enrollmentTokenTtlMs: number; now: Date },
): Promise<IssuedEnrollmentToken> {
  const environment = await getEnvironment(db, organisationId, id);
  return db.transaction((tx) =>
    issueEnrollmentToken(tx, environment.id, options.enrollmentTokenTtlMs, options.now),
  );
}
