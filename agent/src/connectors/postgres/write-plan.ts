import { DrayError } from "@dray/common";
import type { WriteBatchRequest } from "../../connector.js";
import {
  type EntityInfo,
  type FieldInfo,
  ownRowsSql,
  requireFields,
  resolveKey,
  rowKeyOf,
} from "./entity-catalog.js";
import { displayName, qualifiedName, quoteIdentifier } from "./identifiers.js";

/** The staging table: one text column per field plus the row's ordinal in the batch. */
export const STAGE = "pg_temp.dray_stage";

/** The statements of one write, built from catalog names and types only. */
export interface WritePlan {
  fields: FieldInfo[];
  key: FieldInfo[];
  /** Index of each key field within `fields`. */
  keyPositions: number[];
  createStageSql: string;
  copySql: string;
  /** Inserts (or merges) staged ordinals `$1..$2`; returns one row `{ created, updated }`. */
  writeSql: string;
}

/** Alias of the target table in writes (the existing row in ON CONFLICT … DO UPDATE … WHERE). */
const TARGET_ALIAS = "dray_t";

/**
 * Types whose equality means identical text, compared as they are (cheap);
 * text types are compared under the "C" collation (bytewise, whatever the
 * column's collation). Any other type is compared through its text form, so
 * "equal" never hides a difference the target would keep (e.g. numeric 1.0
 * and 1.00, or json whitespace).
 */
const NATIVE_EQUALITY = new Set([
  "bigint",
  "integer",
  "smallint",
  "boolean",
  "date",
  "timestamp without time zone",
  "timestamp with time zone",
  "uuid",
  "bytea",
]);
const TEXT_TYPES = new Set(["text", "character varying", "character"]);

/** True when any of `fields` differs between the existing row and the proposed one (`excluded`). */
export function changedCondition(fields: readonly FieldInfo[]): string {
  const pairs = fields.map((f) => {
    const name = quoteIdentifier(f.name);
    const [mine, theirs] = [`${TARGET_ALIAS}.${name}`, `excluded.${name}`];
    if (NATIVE_EQUALITY.has(f.castType)) return [mine, theirs];
    if (TEXT_TYPES.has(f.castType)) return [`${mine} collate "C"`, `${theirs} collate "C"`];
    return [`${mine}::text collate "C"`, `${theirs}::text collate "C"`];
  });
  return `(${pairs.map((p) => p[0]).join(", ")}) is distinct from (${pairs.map((p) => p[1]).join(", ")})`;
}

/**
 * True when any of `fields` differs between the target row `t` and the staged
 * row `s` (field `i` in staging column `i`), compared as {@link changedCondition} does.
 */
export function updatedCondition(fields: readonly { f: FieldInfo; i: number }[]): string {
  const pairs = fields.map(({ f, i }) => {
    const [mine, theirs] = [`t.${quoteIdentifier(f.name)}`, `s.${stageColumn(i)}::${f.castType}`];
    if (NATIVE_EQUALITY.has(f.castType)) return [mine, theirs];
    if (TEXT_TYPES.has(f.castType)) return [`${mine} collate "C"`, `(${theirs}) collate "C"`];
    return [`${mine}::text collate "C"`, `(${theirs})::text collate "C"`];
  });
  return `(${pairs.map((p) => p[0]).join(", ")}) is distinct from (${pairs.map((p) => p[1]).join(", ")})`;
}

/** Name of the staging column holding field `index` (0-based). */
export function stageColumn(index: number): string {
  return `c${index + 1}`;
}

/**
 * Resolves fields and key against the catalog and builds the SQL. Merge needs
 * a key (given, or the primary key) and updates every non-key field; insert
 * uses the key only to name rejected rows.
 */
export function planWrite(info: EntityInfo, request: WriteBatchRequest): WritePlan {
  const entity = displayName(info.entity);
  const fields = requireFields(info, request.rows.fields);
  const generated = fields.filter((f) => f.generated).map((f) => f.name);
  if (generated.length > 0)
    throw new DrayError(
      "invalid_argument",
      `generated fields of ${entity} cannot be written: ${generated.join(", ")}`,
    );
  const key =
    request.strategy !== "insert" || (request.keyFields ?? []).length > 0
      ? resolveKey(info, request.keyFields)
      : requireFields(info, rowKeyOf(info));
  const keyPositions = key.map((k) => {
    const at = fields.findIndex((f) => f.name === k.name);
    if (at < 0)
      throw new DrayError("invalid_argument", `key field ${JSON.stringify(k.name)} is not among rows.fields`);
    return at;
  });

  const target = qualifiedName(info.entity);
  const columns = fields.map((f) => quoteIdentifier(f.name)).join(", ");
  const overriding = fields.some((f) => f.identity === "a") ? " overriding system value" : "";
  const casts = fields.map((f, i) => `${stageColumn(i)}::${f.castType}`).join(", ");
  const range = "dray_ord between $1::int8 and $2::int8";
  const insert = `insert into ${target} as ${TARGET_ALIAS} (${columns})${overriding} select ${casts} from ${STAGE} where ${range} order by dray_ord`;
  let writeSql: string;
  if (request.strategy === "insert") {
    writeSql = `with written as (${insert} returning 1) select count(*)::int8 as created, 0::int8 as updated from written`;
  } else if (request.strategy === "update") {
    // Only rows already present change; no row is inserted, so NOT NULL fields left out are never checked.
    const keyNames = new Set(key.map((k) => k.name));
    const assignments = fields
      .map((f, i) => ({ f, i }))
      .filter(({ f }) => !keyNames.has(f.name))
      .map(({ f, i }) => `${quoteIdentifier(f.name)} = s.${stageColumn(i)}::${f.castType}`);
    if (assignments.length === 0)
      throw new DrayError(
        "invalid_argument",
        `an update of ${entity} needs at least one field besides the key`,
      );
    const match = key
      .map((k, i) => `t.${quoteIdentifier(k.name)} = s.${stageColumn(keyPositions[i]!)}::${k.castType}`)
      .join(" and ");
    // A row already equal is not rewritten (a re-run's back-fill changes nothing).
    const changed = updatedCondition(
      fields.map((f, i) => ({ f, i })).filter(({ f }) => !keyNames.has(f.name)),
    );
    writeSql =
      `with written as (update ${ownRowsSql(info)} t set ${assignments.join(", ")} from ${STAGE} s` +
      ` where s.${range} and ${match} and ${changed} returning 1)` +
      " select 0::int8 as created, count(*)::int8 as updated from written";
  } else {
    const keyNames = new Set(key.map((k) => k.name));
    const updated = fields.filter((f) => !keyNames.has(f.name));
    const assignments = updated
      .map((f) => `${quoteIdentifier(f.name)} = excluded.${quoteIdentifier(f.name)}`)
      .join(", ");
    // A row equal to its source is not rewritten (no dead tuple, no WAL); it still counts as updated.
    // With nothing but key fields, an existing row is always equal: nothing to do.
    const action =
      updated.length > 0 ? `do update set ${assignments} where ${changedCondition(updated)}` : "do nothing";
    const merge = `${insert} on conflict (${key.map((k) => quoteIdentifier(k.name)).join(", ")}) ${action}`;
    if (!info.partitioned) {
      // xmax is 0 on a freshly inserted row version; rows left as they were are not returned, so
      // updated = the range's rows minus those inserted.
      // Staged rows may have been taken out (rejected by a check), so the range is counted, not computed.
      writeSql =
        `with written as (${merge} returning (xmax = 0) as inserted)` +
        " select (count(*) filter (where inserted))::int8 as created," +
        ` ((select count(*) from ${STAGE} where ${range}) - count(*) filter (where inserted))::int8 as updated from written`;
    } else {
      // RETURNING cannot read xmax of a partitioned table: count the keys already present instead
      // (same snapshot as the insert; exact unless another writer adds the same keys concurrently).
      const match = key
        .map((k, i) => `t.${quoteIdentifier(k.name)} = s.${stageColumn(keyPositions[i]!)}::${k.castType}`)
        .join(" and ");
      writeSql =
        `with present as (select count(*) as n from ${STAGE} s where s.${range}` +
        ` and exists (select 1 from ${target} t where ${match})),` +
        ` written as (${merge} returning 1)` +
        ` select ((select count(*) from ${STAGE} where ${range}) - (select n from present))::int8 as created, (select n from present)::int8 as updated` +
        " from (select count(*) from written) as w";
    }
  }
  return {
    fields,
    key,
    keyPositions,
    createStageSql:
      `create temp table dray_stage (dray_ord int8 generated always as identity, ` +
      `${fields.map((_, i) => `${stageColumn(i)} text`).join(", ")}) on commit drop`,
    copySql: `copy ${STAGE} (${fields.map((_, i) => stageColumn(i)).join(", ")}) from stdin`,
    writeSql,
  };
}
