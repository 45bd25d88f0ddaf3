import { DrayError } from "@dray/common";
import { parseCopyLine, splitCopyLines } from "./copy-text.js";
import type { Session } from "./session.js";
import { STAGE, stageColumn, type WritePlan } from "./write-plan.js";

/**
 * How a batch reaches the staging table: `copy` streams it with COPY FROM
 * STDIN (fastest); `insert` binds each field as a text array to one
 * `INSERT … SELECT unnest(…)` per chunk, for servers that cannot take COPY
 * FROM STDIN (such as PGlite behind its socket server).
 */
export type StagingMode = "copy" | "insert";

/** Rows per INSERT in `insert` mode. */
const INSERT_CHUNK_ROWS = 2_000;

/**
 * A Postgres array literal of text values, bound as one text parameter and
 * cast with `::text[]`; NULL stays NULL, every other value is quoted.
 *
 * @example
 * textArrayLiteral(["a", null, 'say "hi"']) // {"a",NULL,"say \"hi\""}
 */
export function textArrayLiteral(values: readonly (string | null)[]): string {
  const items = values.map((v) =>
    v === null ? "NULL" : `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`,
  );
  return `{${items.join(",")}}`;
}

async function insertChunks(session: Session, plan: WritePlan, data: Uint8Array): Promise<void> {
  const lines = splitCopyLines(data);
  const width = plan.fields.length;
  const columns = plan.fields.map((_, i) => stageColumn(i));
  const unnest = columns.map((_, i) => `$${i + 1}::text[]`).join(", ");
  const sql = `insert into ${STAGE} (${columns.join(", ")}) select * from unnest(${unnest})`;
  for (let at = 0; at < lines.length; at += INSERT_CHUNK_ROWS) {
    const chunk = lines.slice(at, at + INSERT_CHUNK_ROWS).map(parseCopyLine);
    const params = Array.from({ length: width }, (_, f) =>
      textArrayLiteral(chunk.map((row) => row[f] ?? null)),
    );
    await session.query(sql, params);
  }
}

/**
 * Loads the prepared lines into the staging table and checks the count.
 * Lines are in arrival order, so staged ordinals match them one to one.
 */
export async function stageRows(
  session: Session,
  plan: WritePlan,
  data: Uint8Array,
  expected: number,
  mode: StagingMode,
): Promise<void> {
  const verify = `select count(*)::int8 as n from ${STAGE}`;
  let staged: { n: string } | undefined;
  if (mode === "copy") {
    [staged] = await session.copyIn<{ n: string }>(plan.copySql, data, verify);
  } else {
    await insertChunks(session, plan, data);
    [staged] = await session.query<{ n: string }>(verify);
  }
  if (Number(staged?.n) !== expected) {
    throw new DrayError("internal", `staged ${staged?.n} rows but sent ${expected}`);
  }
}
