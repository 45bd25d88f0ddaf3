/** Organisations (tenants): create, read, update. Callers check roles first. */
import { DrayError } from "@dray/common";
import { eq } from "drizzle-orm";
import type { Principal } from "../auth/roles.js";
import { isUuid, newId } from "../store/ids.js";
import type { Db } from "../store/open-store.js";
import { organisations } from "../store/schema.js";

/** An organisation as the API shows it. */
export interface OrganisationView {
  id: string;
  name: string;
  monthlyRecordLimit: number;
  createdAt: string;
  updatedAt: string;
}

type OrganisationRow = typeof organisations.$inferSelect;

/** The API view of a stored organisation. */
export function toOrganisationView(row: OrganisationRow): OrganisationView {
  return {
    id: row.id,
    name: row.name,
    monthlyRecordLimit: row.monthlyRecordLimit,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** The `not_found` error for an organisation the caller may not see or that does not exist. */
export function organisationNotFound(id: string): DrayError {
  return new DrayError("not_found", `organisation ${id} was not found`);
}

/** Creates an organisation. */
export async function createOrganisation(
  db: Db,
  input: { name: string; monthlyRecordLimit: number },
  now: Date,
): Promise<OrganisationView> {
  const [row] = await db
    .insert(organisations)
    .values({
      id: newId(),
      name: input.name,
      monthlyRecordLimit: input.monthlyRecordLimit,
      createdAt: now,
      updatedAt: now,
    })
    .returning();
  return toOrganisationView(row!);
}

/** The stored organisation, or undefined (also for ids that are not UUIDs). */
export async function findOrganisation(db: Db, id: string): Promise<OrganisationRow | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await db.select().from(organisations).where(eq(organisations.id, id)).limit(1);
  return row;
}

/**
 * The organisation as seen by `principal`: the system admin sees every one, a
 * token of an organisation only its own. Anything else is `not_found`.
 */
export async function getOrganisationFor(
  db: Db,
  principal: Principal,
  id: string,
): Promise<OrganisationView> {
  if (principal.role !== "system" && principal.organisationId !== id) throw organisationNotFound(id);
  const row = await findOrganisation(db, id);
  if (!row) throw organisationNotFound(id);
  return toOrganisationView(row);
}

/** Renames an organisation and/or changes its monthly record limit. */
export async function updateOrganisation(
  db: Db,
  id: string,
  patch: { name?: string | undefined; monthlyRecordLimit?: number | undefined },
  now: Date,
): Promise<OrganisationView> {
  if (!isUuid(id)) throw organisationNotFound(id);
  const [row] = await db
    .update(organisations)
    .set({
      ...(patch.name === undefined ? {} : { name: patch.name }),
      ...(patch.monthlyRecordLimit === undefined ? {} : { monthlyRecordLimit: patch.monthlyRecordLimit }),
      updatedAt: now,
    })
    .where(eq(organisations.id, id))
    .returning();
  if (!row) throw organisationNotFound(id);
  return toOrganisationView(row);
}
