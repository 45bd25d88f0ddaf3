/**
 * Keyset pages read with `COPY (SELECT …) TO STDOUT`: the server writes the
 * COPY text and the agent forwards its bytes, instead of decoding every value
 * and escaping it again.
 *
 * COPY takes no bind parameters, and values are never spliced into SQL. They
 * are stored first, as bound parameters, in transaction-local settings
 * (`select set_config('dray.p1', $1, true), …`, sent together with BEGIN), and
 * the statement reads them back typed: `pg_catalog.current_setting('dray.p1')::bigint`.
 * current_setting is STABLE, so a key range on it is still an index condition
 * of the primary key (and the planner estimates with the actual values); a
 * NULL parameter is the literal `null`. COMMIT drops the settings.
 */
import type { ReadBatchRequest, ReadBatchResult } from "../../connector.js";
import type { Placeholder } from "./conditions.js";
import { CopyPageCollector } from "./copy-page.js";
import { sqlStateOf } from "./error-mapping.js";
import { buildKeysetQuery, type KeysetPlan } from "./keyset-read.js";
import type { Session, Statement } from "./session.js";

/**
 * Bytes a COPY may still deliver after its page is full before the statement
 * is cancelled on the server instead of being drained to its end. Draining is
 * cheaper than a cancel (a round trip on the control connection and an aborted
 * transaction) while little is left; a page of huge rows is stopped early.
 */
const COPY_DISCARD_LIMIT_BYTES = 1 << 20;

/** SQLSTATE of a statement cancelled on request (`query_canceled`). */
const QUERY_CANCELED = "57014";

/** Name of the setting that holds parameter `index` (1-based). */
function settingName(index: number): string {
  return `dray.p${index}`;
}

/** Reads parameter `index` (1-based) back from its setting, as text. */
export function settingValue(index: number): string {
  return `pg_catalog.current_setting('${settingName(index)}')`;
}

/** Reads parameter `index` back from its setting; NULL stays the literal `null`. */
export const settingPlaceholder: Placeholder = (index, value) =>
  value === null || value === undefined ? "null" : settingValue(index);

/**
 * The statement that stores every non-NULL parameter in its transaction-local
 * setting, values bound; null when there is nothing to store.
 *
 * @example
 * settingsStatement(["41", null, 100])
 * // { text: "select pg_catalog.set_config('dray.p1', $1::text, true), pg_catalog.set_config('dray.p3', $2::text, true)",
 * //   params: ["41", 100], prepared: true }
 */
export function settingsStatement(values: readonly unknown[]): Statement | null {
  const calls: string[] = [];
  const params: unknown[] = [];
  values.forEach((value, i) => {
    if (value === null || value === undefined) return;
    params.push(value);
    calls.push(`pg_catalog.set_config('${settingName(i + 1)}', $${params.length}::text, true)`);
  });
  // Prepared: its text depends only on which parameters are set, so a connection keeps few of them.
  return calls.length > 0 ? { text: `select ${calls.join(", ")}`, params, prepared: true } : null;
}

/**
 * Whether every parameter can travel through a setting as its text: strings
 * without NUL, finite numbers, or NULL. Requests are validated before they get
 * here, so this only guards against a future parameter kind; a request that
 * fails it is read with the SELECT path.
 */
export function settingsCanCarry(values: readonly unknown[]): boolean {
  return values.every(
    (value) =>
      value === null ||
      value === undefined ||
      (typeof value === "string" && !value.includes("\0")) ||
      (typeof value === "number" && Number.isFinite(value)),
  );
}

/** The COPY statement and its settings for one keyset page. */
export interface CopyRead {
  copySql: string;
  setup: Statement | null;
  fields: string[];
  columnCount: number;
  keyPositions: number[];
}

/** Builds the COPY of a keyset page; null when its parameters cannot be carried by settings. */
export function buildCopyRead(request: ReadBatchRequest, plan: KeysetPlan): CopyRead | null {
  const query = buildKeysetQuery(
    request,
    plan.fields,
    plan.key,
    plan.resolve,
    plan.nulled,
    settingPlaceholder,
    plan.from,
  );
  if (!settingsCanCarry(query.params)) return null;
  return {
    copySql: `copy (${query.sql}) to stdout`,
    setup: settingsStatement(query.params),
    fields: query.fields,
    columnCount: query.columnCount,
    keyPositions: query.keyPositions,
  };
}

/** A collector of COPY lines of `columnCount` columns into a page of the first `fieldCount`, within `maxBytes`. */
export function copyCollector(fieldCount: number, columnCount: number, maxBytes: number): CopyPageCollector {
  return new CopyPageCollector({ fieldCount, columnCount, maxBytes, discardLimit: COPY_DISCARD_LIMIT_BYTES });
}

/**
 * Runs the COPY of `read` (inside a transaction the caller holds, its settings
 * already made) into `collector`. Lines are kept until the byte budget is
 * reached; once more than {@link COPY_DISCARD_LIMIT_BYTES} have been discarded
 * after that, the COPY is cancelled on the server. Returns false when it was
 * cancelled that way: the page is complete, and the transaction is aborted
 * (no further statement; COMMIT ends it).
 */
export async function copyInto(
  session: Session,
  read: Pick<CopyRead, "copySql">,
  collector: Pick<CopyPageCollector, "add">,
): Promise<boolean> {
  let stopped = false;
  try {
    await session.copyOut(read.copySql, (message) => {
      if (collector.add(message) || stopped) return;
      stopped = true;
      session.cancelStatement(`the page is full and more than ${COPY_DISCARD_LIMIT_BYTES} bytes followed`);
    });
  } catch (error) {
    // Our own cancel of the unwanted rest.
    if (!stopped || session.signal.aborted || sqlStateOf(error) !== QUERY_CANCELED) throw error;
  }
  return !stopped;
}

/**
 * Reads one keyset page with COPY TO STDOUT (see {@link copyInto}), in a short
 * transaction that holds the parameter settings; `before` is sent first (a
 * snapshot to read in, snapshot-import.ts).
 */
export async function copyKeysetPage(
  session: Session,
  request: ReadBatchRequest,
  read: CopyRead,
  before: readonly Statement[] = [],
): Promise<ReadBatchResult> {
  const collector = copyCollector(read.fields.length, read.columnCount, request.maxBytes);
  await session.transaction(
    () => copyInto(session, read, collector),
    read.setup ? [...before, read.setup] : before,
  );
  const page = collector.finish(read.keyPositions);
  return {
    rows: { encoding: "copy_text", fields: read.fields, rowCount: page.rowCount, data: page.data },
    last: page.last,
    done: !page.trimmed && page.received < request.maxRows,
  };
}
