/**
 * Sort keys of the environments list for keyset pagination, one list per
 * sort, in the order environments-query.ts documents. Every list ends with the
 * name and the id, so the order is total and a cursor names one position.
 * Timestamps are compared as epoch seconds with microseconds (exact, unlike a
 * JavaScript Date). Pure: no I/O.
 */
import { sql } from "drizzle-orm";
import type { KeysetKey } from "../api/pagination.js";
import { environments } from "../store/schema.js";
import type { EnvironmentSort } from "./environments-query.js";

const byName: KeysetKey[] = [
  { expr: sql`lower(${environments.name}) collate "C"`, dir: "asc" },
  { expr: sql`${environments.name} collate "C"`, dir: "asc" },
  { expr: sql`${environments.id}`, dir: "asc", kind: "uuid" },
];

/**
 * The keys of a sort:
 * - `name`: A–Z, case-insensitive
 * - `health`: healthy, unhealthy, unknown
 * - `lastHeartbeat`: most recent first, never-seen last
 * - `createdAt`: newest first
 */
export function environmentKeyset(sort: EnvironmentSort): KeysetKey[] {
  switch (sort) {
    case "name":
      return byName;
    case "health":
      return [
        {
          expr: sql`(case ${environments.health} when 'healthy' then 0 when 'unhealthy' then 1 else 2 end)`,
          kind: "number",
          dir: "asc",
        },
        ...byName,
      ];
    case "lastHeartbeat":
      return [
        {
          expr: sql`extract(epoch from ${environments.lastHeartbeatAt})`,
          dir: "desc",
          nullable: true,
          kind: "number",
        },
        ...byName,
      ];
    case "createdAt":
      return [
        { expr: sql`extract(epoch from ${environments.createdAt})`, dir: "desc", kind: "number" },
        ...byName,
      ];
  }
}
