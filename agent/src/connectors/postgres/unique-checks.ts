/**
 * Set-based detection of unique-key conflicts in a staged batch: run once a
 * write failed on data, before any bisection, so a batch with many duplicate
 * rows costs a few statements instead of a savepoint per row. Whatever this
 * misses still fails the write and is isolated by bisection.
 */
import type { WriteStrategy } from "../../connector.js";
import { type EntityInfo, ownRowsSql } from "./entity-catalog.js";
import { quoteIdentifier } from "./identifiers.js";
import { jsonTextArray, type OrdinalRecord, parseJsonTextArray } from "./reference-checks.js";
import type { Session } from "./session.js";
import { STAGE, stageColumn, type WritePlan } from "./write-plan.js";

/** One statement of {@link conflictQueries}: which unique index, and the SQL listing conflicting ordinals. */
export interface ConflictQuery {
  index: string;
  columns: string[];
  /** Returns `dray_ord`, `key` (row key values) and `shown` (the index's values), all text. */
  sql: string;
  /** `exists`: the value is already in the target; `repeated`: an earlier row of the batch has it. */
  kind: "exists" | "repeated";
}

/**
 * The conflict queries of a write. For `insert`, every unique index (whose
 * fields are all written) is checked against the target and within the
 * batch. For `merge`, the merge key is not checked (a match in the target is
 * an update; a repeat within the batch updates the earlier row), and every
 * other unique index against target rows with another key and within the batch. Rows with a NULL in the
 * index's fields never conflict. Within the batch, the earliest row wins.
 */
export function conflictQueries(info: EntityInfo, plan: WritePlan, strategy: WriteStrategy): ConflictQuery[] {
  if (strategy === "update") return [];
  const position = new Map(plan.fields.map((f, i) => [f.name, i]));
  const value = (alias: string, field: string) => {
    const i = position.get(field)!;
    return `${alias}.${stageColumn(i)}::${plan.fields[i]!.castType}`;
  };
  const keyNames = plan.key.map((k) => k.name);
  const keyList = (alias: string) =>
    jsonTextArray(plan.keyPositions.map((at) => `${alias}.${stageColumn(at)}`));
  const target = ownRowsSql(info);
  const queries: ConflictQuery[] = [];
  for (const index of info.uniqueIndexes) {
    if (!index.columns.every((c) => position.has(c))) continue;
    const isMergeKey =
      strategy === "merge" &&
      index.columns.length === keyNames.length &&
      index.columns.every((c) => keyNames.includes(c));
    const notNull = index.columns.map((c) => `${value("s", c)} is not null`).join(" and ");
    const shown = jsonTextArray(index.columns.map((c) => `s.${stageColumn(position.get(c)!)}`));
    const select = `select s.dray_ord::text as dray_ord, ${keyList("s")} as key, ${shown} as shown`;
    if (!isMergeKey) {
      const same = index.columns.map((c) => `t.${quoteIdentifier(c)} = ${value("s", c)}`).join(" and ");
      const otherRow =
        strategy === "merge"
          ? ` and (${keyNames.map((k) => `t.${quoteIdentifier(k)}`).join(", ")}) is distinct from (${keyNames
              .map((k) => value("s", k))
              .join(", ")})`
          : "";
      queries.push({
        index: index.name,
        columns: index.columns,
        kind: "exists",
        sql: `${select} from ${STAGE} s where ${notNull} and exists (select 1 from ${target} t where ${same}${otherRow})`,
      });
    }
    // Merge: two rows of the batch with the same merge key are written one after the other (bisection),
    // the later one updating the earlier, as before this check existed.
    if (isMergeKey) continue;
    const partition = index.columns.map((c) => value("s", c)).join(", ");
    queries.push({
      index: index.name,
      columns: index.columns,
      kind: "repeated",
      sql:
        `select dray_ord, key, shown from (${select}, row_number() over (partition by ${partition} order by s.dray_ord) as n` +
        ` from ${STAGE} s where ${notNull}) d where n > 1`,
    });
  }
  // Values already in the target first: a row rejected for one of them must not make a later row
  // with the same key a repeat within the batch.
  return [...queries.filter((q) => q.kind === "exists"), ...queries.filter((q) => q.kind === "repeated")];
}

/**
 * Runs {@link conflictQueries} and takes the conflicting rows out of the
 * staging table, returning them as rejected records (SQLSTATE 23505).
 */
export async function rejectKeyConflicts(
  session: Session,
  info: EntityInfo,
  plan: WritePlan,
  strategy: WriteStrategy,
): Promise<OrdinalRecord[]> {
  const rejected: OrdinalRecord[] = [];
  for (const query of conflictQueries(info, plan, strategy)) {
    const rows = await session.query<{ dray_ord: string; key: string; shown: string }>(query.sql);
    if (rows.length === 0) continue;
    for (const row of rows) {
      const detail =
        query.kind === "exists"
          ? "already exists"
          : "appears more than once in the batch (the first one was kept)";
      rejected.push({
        ordinal: Number(row.dray_ord),
        key: parseJsonTextArray(row.key).map((v) => v ?? "\\N"),
        field: query.columns[0]!,
        message:
          `duplicate key value violates unique constraint ${JSON.stringify(query.index)}: ` +
          `Key (${query.columns.join(", ")})=(${parseJsonTextArray(row.shown)
            .map((v) => v ?? "null")
            .join(", ")}) ${detail}`,
        sqlState: "23505",
      });
    }
    await session.execute(`delete from ${STAGE} where dray_ord = any($1::int8[])`, [
      `{${rows.map((r) => r.dray_ord).join(",")}}`,
    ]);
  }
  return rejected;
}
