import { describe, expect, it } from "vitest";
import { boundaryOf, parseHeaderValue, parseMultipart, readTextPart } from "./multipart-stream.js";

/** A body as Request/FormData encodes it, with its boundary. */
async function encoded(form: FormData): Promise<{ bytes: Uint8Array; boundary: string }> {
  const request = new Request("http://x/", { method: "POST", body: form });
  const bytes = new Uint8Array(await request.arrayBuffer());
  return { bytes, boundary: boundaryOf(request.headers.get("content-type") ?? undefined) };
}

/** The bytes cut into pieces of `size` (1 = byte by byte). */
async function* pieces(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function collect(source: AsyncIterable<Uint8Array>, boundary: string) {
  const parts: {
    name: string;
    filename: string | undefined;
    contentType: string | undefined;
    text: string;
  }[] = [];
  for await (const part of parseMultipart(source, boundary)) {
    const chunks: Buffer[] = [];
    for await (const piece of part.body) chunks.push(Buffer.from(piece));
    parts.push({
      name: part.name,
      filename: part.filename,
      contentType: part.contentType,
      text: Buffer.concat(chunks).toString("utf8"),
    });
  }
  return parts;
}

describe("parseMultipart", () => {
  it("reads fields and a file whatever the piece size, boundary look-alikes included", async () => {
    const form = new FormData();
    form.append("pipeline", "orders");
    const content = `id,name\r\n1,"a\r\n--not the boundary"\r\n${"x".repeat(5000)}\r\n`;
    form.append("file", new Blob([content], { type: "text/csv" }), "dir/orders.csv");
    form.append("publishertoken", "batch-1");
    const { bytes, boundary } = await encoded(form);
    for (const size of [1, 3, 7, 64, 1000, bytes.length]) {
      const parts = await collect(pieces(bytes, size), boundary);
      expect(parts.map((p) => p.name)).toEqual(["pipeline", "file", "publishertoken"]);
      expect(parts[0]!.text).toBe("orders");
      expect(parts[1]).toMatchObject({ filename: "dir/orders.csv", contentType: "text/csv", text: content });
      expect(parts[2]!.text).toBe("batch-1");
    }
  });

  it("skips what the caller leaves unread", async () => {
    const form = new FormData();
    form.append("file", new Blob(["y".repeat(10_000)]), "big.csv");
    form.append("pipeline", "p");
    const { bytes, boundary } = await encoded(form);
    const names: string[] = [];
    let text = "";
    for await (const part of parseMultipart(pieces(bytes, 100), boundary)) {
      names.push(part.name);
      if (part.name === "pipeline") text = await readTextPart(part, 100);
    }
    expect(names).toEqual(["file", "pipeline"]);
    expect(text).toBe("p");
  });

  it("refuses a cut-off body, a part without a name and a long field", async () => {
    const form = new FormData();
    form.append("file", new Blob(["abc"]), "a.csv");
    const { bytes, boundary } = await encoded(form);
    await expect(collect(pieces(bytes.subarray(0, bytes.length - 10), 4), boundary)).rejects.toThrow(
      /invalid multipart/,
    );
    const noName = Buffer.from(`--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n`);
    await expect(collect(pieces(noName, 5), "b")).rejects.toThrow(/name/);
    await expect(collect(pieces(Buffer.from("no boundary here"), 5), "b")).rejects.toThrow(/no part/);
    const long = Buffer.from(
      `--b\r\nContent-Disposition: form-data; name="pipeline"\r\n\r\n${"p".repeat(50)}\r\n--b--`,
    );
    await expect(
      (async () => {
        for await (const part of parseMultipart(pieces(long, 8), "b")) await readTextPart(part, 10);
      })(),
    ).rejects.toThrow(/pipeline: must be at most 10 bytes/);
  });

  it("reads a part with no bytes and a preamble", async () => {
    const raw = Buffer.from(
      'preamble\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="e.csv"\r\n\r\n\r\n--b--\r\n',
    );
    expect(await collect(pieces(raw, 2), "b")).toEqual([
      { name: "file", filename: "e.csv", contentType: undefined, text: "" },
    ]);
  });
});

describe("boundaryOf and parseHeaderValue", () => {
  it("takes the boundary of multipart/form-data only", () => {
    expect(boundaryOf('multipart/form-data; boundary="a b"')).toBe("a b");
    expect(boundaryOf("Multipart/Form-Data; charset=utf-8; boundary=xyz")).toBe("xyz");
    for (const bad of [
      undefined,
      "application/json",
      "multipart/form-data",
      `multipart/form-data; boundary=${"x".repeat(71)}`,
    ])
      expect(() => boundaryOf(bad)).toThrow(/multipart\/form-data/);
  });
  it("unquotes parameters and prefers filename*", () => {
    const { type, params } = parseHeaderValue(
      'form-data; name="fi\\"le"; filename="C:\\\\x.csv"; filename*=UTF-8\'\'%E2%82%AC.csv',
    );
    expect(type).toBe("form-data");
    expect(params.get("name")).toBe('fi"le');
    expect(params.get("filename")).toBe("C:\\x.csv");
    expect(params.get("filename*")).toBe("UTF-8''%E2%82%AC.csv");
  });
});
