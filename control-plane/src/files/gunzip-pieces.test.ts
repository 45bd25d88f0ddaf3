import { gzipSync } from "node:zlib";
import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { isUploadTooLarge, limitBytes } from "./file-staging.js";
import { gunzipPieces } from "./gunzip-pieces.js";
import { CSV_A, collect, failure, pieces, SAMPLE } from "./tar-test-fixtures.js";

describe("gunzipPieces", () => {
  it("decompresses piece by piece", async () => {
    const text = CSV_A.repeat(5000);
    expect((await collect(gunzipPieces(pieces(gzipSync(text), 333)))).toString()).toBe(text);
  });

  it("answers invalid_argument for a truncated or damaged gzip stream", async () => {
    const gz = gzipSync(SAMPLE);
    for (const bytes of [
      gz.subarray(0, gz.length - 30),
      Buffer.concat([gz.subarray(0, 40), Buffer.alloc(200, 7)]),
    ]) {
      const error = await failure(collect(gunzipPieces(pieces(bytes, 64))));
      expect(isDrayError(error) && error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/^the archive is not valid gzip: /);
    }
  });

  it("passes an error of its source through unchanged (the upload limit stays a 413)", async () => {
    const gz = gzipSync(Buffer.alloc(100_000, "z"));
    const error = await failure(collect(gunzipPieces(limitBytes(pieces(gz, 10), 50))));
    expect(isUploadTooLarge(error)).toBe(true);
  });
});
