/**
 * One `readBatch`: plan the keyset page against the catalog, then read it
 * with COPY TO STDOUT or, as the fallback, with a plain SELECT.
 */
import type { ReadBatchRequest, ReadBatchResult } from "../../connector.js";
import { buildCopyRead, copyKeysetPage } from "./copy-read.js";
import { planKeysetRead, selectKeysetPage } from "./keyset-read.js";
import type { Session } from "./session.js";

/**
 * How pages are read: `copy` (COPY TO STDOUT, the server's bytes forwarded as
 * they are) or `select` (rows decoded and escaped to COPY text by the agent,
 * for servers without COPY TO STDOUT). Both give the same bytes.
 */
export type ReadMethod = "copy" | "select";

/** Reads one keyset page; a request whose parameters COPY cannot carry is read with SELECT. */
export async function readBatch(
  session: Session,
  request: ReadBatchRequest,
  method: ReadMethod,
): Promise<ReadBatchResult> {
  const plan = await planKeysetRead(session, request);
  const copy = method === "copy" ? buildCopyRead(request, plan) : null;
  return copy ? copyKeysetPage(session, request, copy) : selectKeysetPage(session, request, plan);
}
