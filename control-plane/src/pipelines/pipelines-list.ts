/**
 * The pipelines list a page at a time: by name (case-insensitive, then by
 * code point, then id), optionally searched, with keyset cursors.
 */
import { and, eq, sql } from "drizzle-orm";
import {
  decodeCursor,
  type KeysetKey,
  keysetAfter,
  keysetColumns,
  keysetOrderBy,
  pageOf,
} from "../api/pagination.js";
import { escapeLikePattern } from "../environments/environments-query.js";
import type { PageRequest } from "../environments/environments-service.js";
import type { Db } from "../store/open-store.js";
import { pipelines } from "../store/schema.js";
import type { PipelineRow } from "./pipeline-view.js";

const KEYS: KeysetKey[] = [
  { expr: sql`lower(${pipelines.name}) collate "C"`, dir: "asc" },
  { expr: sql`${pipelines.name} collate "C"`, dir: "asc" },
  { expr: sql`${pipelines.id}`, dir: "asc", kind: "uuid" },
];
const LIST = "pipelines:name";

/**
 * A page of the organisation's pipelines whose name contains `search`
 * (case-insensitive, literally), with the cursor of the next page (null on
 * the last). Throws `invalid_argument` for a malformed cursor.
 */
export async function listPipelinesPage(
  db: Db,
  organisationId: string,
  query: { search?: string | undefined },
  page: PageRequest,
): Promise<{ pipelines: PipelineRow[]; next: string | null }> {
  const text = query.search?.trim() ?? "";
  const search =
    text === "" ? undefined : sql`${pipelines.name} ilike ${`%${escapeLikePattern(text)}%`} escape '\\'`;
  const after =
    page.cursor === undefined ? undefined : keysetAfter(KEYS, decodeCursor(page.cursor, LIST, KEYS.length));
  const rows = await db
    .select({ row: pipelines, position: keysetColumns(KEYS) })
    .from(pipelines)
    .where(and(eq(pipelines.organisationId, organisationId), search, after))
    .orderBy(...keysetOrderBy(KEYS))
    .limit(page.limit + 1);
  const { items, next } = pageOf(rows, page.limit, LIST, (r) => r.position);
  return { pipelines: items.map((r) => r.row), next };
}
