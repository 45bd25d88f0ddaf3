/**
 * One `readBatch`: look the entity up, then read a keyset page (by the key
 * fields, else the row key) with COPY TO STDOUT or, as the fallback, with a
 * plain SELECT; a table without any row key is read by physical position in
 * one snapshot (keyless-read.ts). Plain tables are read with ONLY: never the
 * rows of tables inheriting from them.
 */
import type { ReadBatchRequest, ReadBatchResult } from "../../connector.js";
import { buildCopyRead, copyKeysetPage } from "./copy-read.js";
import { lookupEntity, rowKeyOf } from "./entity-catalog.js";
import { readKeyless } from "./keyless-read.js";
import { planKeysetRead, selectKeysetPage } from "./keyset-read.js";
import type { Session } from "./session.js";
import type { SnapshotHolder } from "./snapshot-holder.js";

/**
 * How pages are read: `copy` (COPY TO STDOUT, the server's bytes forwarded as
 * they are) or `select` (rows decoded and escaped to COPY text by the agent,
 * for servers without COPY TO STDOUT). Both give the same bytes.
 */
export type ReadMethod = "copy" | "select";

/**
 * Reads one page; a request whose parameters COPY cannot carry is read with
 * SELECT. Empty key fields on a table without a row key read it by physical
 * position, in the snapshot `snapshots` holds (exported by the first read).
 */
export async function readBatch(
  session: Session,
  request: ReadBatchRequest,
  method: ReadMethod,
  snapshots?: SnapshotHolder,
): Promise<ReadBatchResult> {
  const info = await lookupEntity(session, request.entity);
  if ((request.keyFields ?? []).length === 0 && rowKeyOf(info).length === 0)
    return readKeyless(session, request, info, method, snapshots);
  const plan = planKeysetRead(info, request);
  const copy = method === "copy" ? buildCopyRead(request, plan) : null;
  return copy ? copyKeysetPage(session, request, copy) : selectKeysetPage(session, request, plan);
}
