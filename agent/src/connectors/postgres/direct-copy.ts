import type { WriteBatchRequest } from "../../connector.js";
import { settingsStatement, settingValue } from "./copy-read.js";
import { planDirectCopy, probeParams } from "./direct-copy-plan.js";
import { type EntityInfo, ownRowsSql } from "./entity-catalog.js";
import { quoteIdentifier } from "./identifiers.js";
import type { RangeCounts } from "./isolation.js";
import { copiedRowsViolationSql, type ForeignKeyInfo } from "./reference-checks.js";
import type { Session } from "./session.js";
import type { PreparedRows } from "./write-batch.js";
import type { WritePlan } from "./write-plan.js";

const SAVEPOINT = "dray_direct";

/**
 * The fast path of a write: inside the batch's transaction, after the ledger
 * claim, COPY the rows straight into the target — no staging table, no
 * INSERT … SELECT — when that cannot change the outcome. Taken for `insert`
 * and `merge` when no line is malformed, the first and last lines have
 * non-NULL keys, no row of the target lies between those keys (batches come in
 * ascending key order from keyset reads; this is a heuristic, the unique
 * index is the guard) and nothing in the catalog makes COPY differ from the
 * staged statement (see `planDirectCopy`). Every row is then new, so
 * `created` is the row count.
 *
 * Probe and COPY run under a savepoint (taken with the probe, in one round
 * trip). When anything fails there — a key
 * that does not cast, a unique violation from a row outside the range or a
 * concurrent writer, a bad value, a foreign key checked immediately — it is
 * rolled back and null is returned: the caller's staged path then writes the
 * batch and handles each error exactly as it does without this path. With
 * `isolate`, constraints are made immediate first (as the staged path does),
 * so a deferred violation fails the COPY here rather than the COMMIT.
 *
 * @returns the counts when the batch was written, null when the staged path must write it.
 * @throws the abort reason (or the statement's error) once the signal has
 *   fired: nothing is rolled back here, the transaction's owner rolls back.
 */
export async function tryDirectCopy(
  session: Session,
  info: EntityInfo,
  plan: WritePlan,
  request: WriteBatchRequest,
  rows: PreparedRows,
  mode: { triggersOff: boolean; references: readonly ForeignKeyInfo[] } = {
    triggersOff: false,
    references: [],
  },
): Promise<RangeCounts | null> {
  if (rows.loadCount === 0 || rows.malformed.length > 0) return null;
  const direct = planDirectCopy(info, plan, request.strategy, mode.triggersOff);
  if (direct === null) return null;
  const params = probeParams(plan, direct, rows.data);
  if (params === null) return null;
  // With triggers off no foreign key is enforced by the server: the copied rows are checked
  // (their key range) before the savepoint is released, and any violation sends the batch
  // down the staged path, which rejects exactly the violating rows.
  const width = plan.key.length;
  const keyColumns = `(${plan.key.map((k) => `t.${quoteIdentifier(k.name)}`).join(", ")})`;
  // The key bounds are read back from the settings the probe's parameters were stored in.
  const bound = (from: number) =>
    `(${plan.key.map((k, i) => `${settingValue(from + i)}::${k.castType}`).join(", ")})`;
  const copiedRows = `from ${ownRowsSql(info)} t where ${keyColumns} >= ${bound(1)} and ${keyColumns} <= ${bound(width + 1)}`;
  const violation = copiedRowsViolationSql(mode.references, copiedRows);
  // The rows must all lie in the probed range (a batch out of key order would not) and break no key.
  const checkSql =
    violation === null ? null : `select (select count(*) ${copiedRows}) as copied, ${violation} as broken`;
  const immediate = request.rejectPolicy === "isolate" ? "set constraints all immediate; " : "";
  try {
    // Savepoint, the probe's parameters and the probe: one round trip.
    const [, , probeRows] = await session.pipeline([
      { text: `${immediate}savepoint ${SAVEPOINT}`, params: [] },
      settingsStatement(params)!,
      { text: direct.probeSql, params: [] },
    ]);
    const probe = probeRows?.[0] as { taken: boolean; blocked: boolean } | undefined;
    if (probe === undefined || probe.taken || probe.blocked) {
      await session.control(`release savepoint ${SAVEPOINT}`);
      return null;
    }
    // The follow-up statement fails when the COPY did (the transaction is then aborted).
    if (checkSql === null) {
      await session.copyIn(direct.copySql, rows.data, `release savepoint ${SAVEPOINT}`);
      return { created: rows.loadCount, updated: 0 };
    }
    await session.copyIn(direct.copySql, rows.data, "select 1");
    const [check] = await session.query<{ copied: string; broken: boolean }>(checkSql);
    if (check === undefined || check.broken || Number(check.copied) !== rows.loadCount) {
      await session.control(`rollback to savepoint ${SAVEPOINT}; release savepoint ${SAVEPOINT}`);
      return null;
    }
    await session.control(`release savepoint ${SAVEPOINT}`);
    return { created: rows.loadCount, updated: 0 };
  } catch (error) {
    if (session.signal.aborted) throw error;
    try {
      await session.control(`rollback to savepoint ${SAVEPOINT}; release savepoint ${SAVEPOINT}`);
    } catch {
      // The connection is unusable: report what failed first.
      throw error;
    }
    return null;
  }
}
