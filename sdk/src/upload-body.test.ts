import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  fileDisposition,
  multipartBody,
  newBoundary,
  quoteDispositionValue,
  readableOf,
  uploadSource,
} from "./upload-body.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dray-upload-body-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Parses a streamed body as a server would (undici's multipart parser). */
async function parse(boundary: string, body: ReadableStream<Uint8Array>) {
  const request = new Request("http://dray.test/upload", {
    method: "POST",
    headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
    body,
    duplex: "half",
  } as RequestInit);
  return request.formData();
}

describe("upload body", () => {
  it("streams the fields, then the file read from disk, with progress up to its size", async () => {
    const path = join(dir, "orders.csv");
    // Larger than one read chunk, so the file comes in several pieces.
    const content = `id,name\n${Array.from({ length: 40_000 }, (_, i) => `${i},customer ${i}`).join("\n")}\n`;
    await writeFile(path, content);
    const source = await uploadSource(path);
    expect(source).toMatchObject({ filename: "orders.csv", totalBytes: Buffer.byteLength(content) });
    const progress: number[] = [];
    const boundary = newBoundary();
    const form = await parse(
      boundary,
      readableOf(
        multipartBody(boundary, { pipeline: "orders-feed", publisherToken: "pub-1" }, source, (n) =>
          progress.push(n),
        ),
      ),
    );
    expect(form.get("pipeline")).toBe("orders-feed");
    expect(form.get("publishertoken")).toBe("pub-1");
    const sent = form.get("file") as File;
    expect(sent.name).toBe("orders.csv");
    expect(await sent.text()).toBe(content);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toBe(Buffer.byteLength(content));
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
  });

  it("names a stream by the name given, and leaves out an absent publisher token", async () => {
    const source = await uploadSource(Readable.from([Buffer.from("a\n"), Buffer.from("b\n")]), "x.ndjson");
    expect(source.totalBytes).toBeUndefined();
    const boundary = newBoundary();
    const form = await parse(boundary, readableOf(multipartBody(boundary, { pipeline: "p" }, source)));
    expect(form.has("publishertoken")).toBe(false);
    expect(await (form.get("file") as File).text()).toBe("a\nb\n");
    expect((form.get("file") as File).name).toBe("x.ndjson");
  });

  it("refuses a missing path or a directory before sending anything", async () => {
    await expect(uploadSource(join(dir, "nope.csv"))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(uploadSource(dir)).rejects.toMatchObject({ code: "EISDIR" });
  });

  it("quotes file names safely and adds filename* for names outside ASCII", () => {
    expect(quoteDispositionValue('a"b\r\nc')).toBe('"a%22b%0D%0Ac"');
    expect(fileDisposition("orders.csv")).toBe('filename="orders.csv"');
    expect(fileDisposition("rapport-été.csv")).toBe(
      "filename=\"rapport-t.csv\"; filename*=UTF-8''rapport-%C3%A9t%C3%A9.csv",
    );
  });
});
