/**
 * Uploaded bytes are staged and read back the same on PGlite (the demo's
 * store) as on Postgres: chunks of bytea, in order, with the SHA-256 of the
 * whole and nothing left after a delete.
 */
import { createHash, randomBytes } from "node:crypto";
import { count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteStaged, readStagedFile, stageUpload } from "../src/files/file-staging.js";
import { stagedFileChunks } from "../src/store/index.js";
import { type ApiHarness, openApiHarness } from "./api-test-harness.js";

let h: ApiHarness;

beforeAll(async () => {
  h = await openApiHarness(undefined);
});

afterAll(async () => h?.close());

describe("staging an upload on PGlite", () => {
  it("stores the bytes in chunks, reads them back in order, and deletes them", async () => {
    const bytes = randomBytes(300_000);
    const pieces = [bytes.subarray(0, 70_000), bytes.subarray(70_000, 250_001), bytes.subarray(250_001)];
    const staged = await stageUpload(h.store.db, pieces, { maxBytes: 1_000_000, chunkBytes: 64 * 1024 });
    expect(staged.sizeBytes).toBe(bytes.length);
    expect(staged.fileId).toBe(createHash("sha256").update(bytes).digest("hex"));
    const [chunks] = await h.store.db
      .select({ n: count() })
      .from(stagedFileChunks)
      .where(eq(stagedFileChunks.uploadId, staged.uploadId));
    expect(chunks?.n).toBe(Math.ceil(bytes.length / (64 * 1024)));

    const back: Buffer[] = [];
    for await (const chunk of readStagedFile(h.store.db, staged.uploadId)) back.push(Buffer.from(chunk));
    expect(Buffer.concat(back).equals(bytes)).toBe(true);

    await deleteStaged(h.store.db, staged.uploadId);
    const [left] = await h.store.db
      .select({ n: count() })
      .from(stagedFileChunks)
      .where(eq(stagedFileChunks.uploadId, staged.uploadId));
    expect(left?.n).toBe(0);
  });
});
