/**
 * Search and sort of the environments list, as SQL fragments. Pure: no I/O.
 * Search text is always a bound parameter; LIKE wildcards in it are escaped.
 */
import { DrayError } from "@dray/common";
import { asc, desc, or, type SQL, sql } from "drizzle-orm";
import { environments } from "../store/schema.js";

/** Orders the list can be sorted by; `name` is the default. */
export const ENVIRONMENT_SORTS = ["name", "health", "lastHeartbeat", "createdAt"] as const;
export type EnvironmentSort = (typeof ENVIRONMENT_SORTS)[number];

/** Longest accepted search text. */
export const MAX_SEARCH_LENGTH = 200;

/**
 * The sort named by a query parameter; undefined or empty means `name`.
 * Throws `invalid_argument` listing the valid values otherwise (a long value is cut short in the message).
 *
 * @example
 * parseEnvironmentSort("health") // "health"
 */
export function parseEnvironmentSort(value: string | undefined): EnvironmentSort {
  if (value === undefined || value === "") return "name";
  if ((ENVIRONMENT_SORTS as readonly string[]).includes(value)) return value as EnvironmentSort;
  throw new DrayError(
    "invalid_argument",
    `sort must be one of ${ENVIRONMENT_SORTS.join(", ")} (got "${value.length > 40 ? `${value.slice(0, 40)}…` : value}")`,
    {
      details: { issues: [{ path: "sort", message: `expected one of ${ENVIRONMENT_SORTS.join(", ")}` }] },
    },
  );
}

/**
 * Escapes `\`, `%` and `_` so the text matches literally inside a LIKE pattern
 * (with `escape '\'`).
 *
 * @example
 * escapeLikePattern("50%_off") // "50\\%\\_off"
 */
export function escapeLikePattern(text: string): string {
  return text.replace(/[\\%_]/g, "\\$&");
}

/**
 * The condition matching `search` case-insensitively anywhere in the name,
 * application or URL; undefined for an empty search.
 */
export function environmentSearchCondition(search: string | undefined): SQL | undefined {
  const text = search?.trim() ?? "";
  if (text === "") return undefined;
  const pattern = `%${escapeLikePattern(text)}%`;
  return or(
    sql`${environments.name} ilike ${pattern} escape '\\'`,
    sql`${environments.application} ilike ${pattern} escape '\\'`,
    sql`${environments.url} ilike ${pattern} escape '\\'`,
  );
}

/**
 * ORDER BY terms of a sort. Ties always fall back to the name, then the id, so
 * the order is stable. Names compare lower-cased by code point (`collate "C"`),
 * so Postgres and PGlite agree whatever the database's locale:
 * - `name`: A–Z, case-insensitive
 * - `health`: healthy, unhealthy, unknown
 * - `lastHeartbeat`: most recent first, never-seen last
 * - `createdAt`: newest first
 */
export function environmentOrderBy(sort: EnvironmentSort): SQL[] {
  const byName = [
    asc(sql`lower(${environments.name}) collate "C"`),
    asc(sql`${environments.name} collate "C"`),
    asc(environments.id),
  ];
  switch (sort) {
    case "name":
      return byName;
    case "health":
      return [
        asc(sql`case ${environments.health} when 'healthy' then 0 when 'unhealthy' then 1 else 2 end`),
        ...byName,
      ];
    case "lastHeartbeat":
      return [sql`${environments.lastHeartbeatAt} desc nulls last`, ...byName];
    case "createdAt":
      return [desc(environments.createdAt), ...byName];
  }
}
