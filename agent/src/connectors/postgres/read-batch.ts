/**
 * One `readBatch`: look the entity up, then read a keyset page (by the key
 * fields, else the row key) with COPY TO STDOUT or, as the fallback, with a
 * plain SELECT; a table without any row key is read by physical position in
 * one snapshot (keyless-read.ts); a run's reads may share one exported
 * snapshot (snapshot-import.ts). Plain tables are read with ONLY: never the
 * rows of tables inheriting from them.
 */
import type { ReadBatchRequest, ReadBatchResult } from "../../connector.js";
import { CatalogCache } from "./catalog-cache.js";
import { boundContinuousRead, ContinuousMarks } from "./continuous-bound.js";
import { buildCopyRead, copyKeysetPage } from "./copy-read.js";
import { rowKeyOf } from "./entity-catalog.js";
import { readKeyless } from "./keyless-read.js";
import { planKeysetRead, planRead, selectKeysetPage } from "./keyset-read.js";
import type { Session } from "./session.js";
import type { SnapshotHolder } from "./snapshot-holder.js";
import { snapshotImportSetup, whileSnapshotHeld } from "./snapshot-import.js";

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
 * The entity's catalog comes from `catalog` (the connector's cache; without
 * one it is read for this call); a page planned from a cached entry that
 * fails the way a changed catalog explains is read once more from a fresh
 * reading ({@link CatalogCache.use}). A continuous read is kept below its
 * high-water mark (continuous-bound.ts); a once read with `snapshotId` reads
 * in that snapshot (snapshot-import.ts); the two-phase marks of non-date/time
 * cursors live in `marks` (the connector's; without one a read of such a
 * cursor finds no earlier recording and returns no rows).
 */
export async function readBatch(
  session: Session,
  request: ReadBatchRequest,
  method: ReadMethod,
  snapshots?: SnapshotHolder,
  catalog: CatalogCache = new CatalogCache({ ttlMs: 0 }),
  marks: ContinuousMarks = new ContinuousMarks(),
): Promise<ReadBatchResult> {
  return catalog.use(
    session,
    request.entity,
    async ({ info }) => {
      if ((request.keyFields ?? []).length === 0 && rowKeyOf(info).length === 0) {
        // Unknown fields are refused here, where a stale entry's refusal is planned again (readKeyless
        // refuses a partitioned table first, so that refusal is left to it).
        if (!info.partitioned) planRead(info, request, []);
        return null;
      }
      const plan = planKeysetRead(info, request);
      const bounded = await boundContinuousRead(session, info, request, marks);
      return { plan, bounded, copy: method === "copy" ? buildCopyRead(bounded, plan) : null };
    },
    (planned, { info }) => {
      if (planned === null) return readKeyless(session, request, info, method, snapshots);
      const snapshotId = request.continuous ? undefined : request.snapshotId;
      if (!snapshotId)
        return planned.copy
          ? copyKeysetPage(session, planned.bounded, planned.copy)
          : selectKeysetPage(session, planned.bounded, planned.plan);
      const setup = snapshotImportSetup(snapshotId);
      snapshots?.touch(snapshotId);
      return whileSnapshotHeld(snapshotId, () =>
        planned.copy
          ? copyKeysetPage(session, planned.bounded, planned.copy, setup)
          : session.transaction(() => selectKeysetPage(session, planned.bounded, planned.plan), setup),
      );
    },
  );
}
