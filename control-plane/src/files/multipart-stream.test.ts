import { describe, expect, it } from "vitest";
import { boundaryOf, parseMultipart, readTextPart } from "./multipart-stream.js";

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
      { name: "file", filename: "e.csv", contentType: "text/plain", text: "" },
    ]);
  });
});

describe("parseMultipart limits, names and backpressure", () => {
  const part = (name: string, extra = "", text = "v") =>
    `--b\r\nContent-Disposition: form-data; name="${name}"${extra}\r\n\r\n${text}\r\n`;

  it("decodes filename* and keeps the path of a filename", async () => {
    const raw = Buffer.from(
      `${part("file", `; filename*=UTF-8''%E2%82%AC%20x.csv`)}${part("other", '; filename="C:/dir/y.csv"')}--b--\r\n`,
    );
    const parts = await collect(pieces(raw, 3), "b");
    expect(parts.map((p) => p.filename)).toEqual(["€ x.csv", "C:/dir/y.csv"]);
  });

  it("refuses more parts than allowed and a long preamble", async () => {
    const three = Buffer.from(`${part("a")}${part("b")}${part("c")}--b--\r\n`);
    const parse = async (bytes: Buffer, limits: Parameters<typeof parseMultipart>[2]) => {
      for await (const p of parseMultipart(pieces(bytes, 7), "b", limits)) await readTextPart(p, 100);
    };
    await expect(parse(three, { maxParts: 3 })).resolves.toBeUndefined();
    await expect(parse(three, { maxParts: 2 })).rejects.toThrow(/more than 2 parts/);
    const preamble = Buffer.concat([Buffer.alloc(4096, "x"), three]);
    await expect(parse(preamble, { maxPreambleBytes: 1000, maxHeaderBytes: 1000 })).rejects.toThrow(
      /no boundary where the body starts/,
    );
  });

  it("pulls no more of the body while a part's bytes are unread", async () => {
    const file = Buffer.alloc(1024 * 1024, "z");
    const form = new FormData();
    form.append("file", new Blob([file]), "big.csv");
    const { bytes, boundary } = await encoded(form);
    const pieceBytes = 16 * 1024;
    const total = Math.ceil(bytes.length / pieceBytes);
    let pulled = 0;
    async function* counted() {
      for await (const piece of pieces(bytes, pieceBytes)) {
        pulled++;
        yield piece;
      }
    }
    let read = 0;
    for await (const p of parseMultipart(counted(), boundary)) {
      const iterator = p.body[Symbol.asyncIterator]();
      read += (await iterator.next()).value?.byteLength ?? 0;
      for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(pulled).toBeLessThan(total / 4);
      for (let next = await iterator.next(); !next.done; next = await iterator.next())
        read += next.value.byteLength;
    }
    expect(read).toBe(file.length);
    expect(pulled).toBe(total);
  });

  it("throws a failure of the body itself as it is", async () => {
    const form = new FormData();
    form.append("file", new Blob([Buffer.alloc(100_000, "q")]), "a.csv");
    const { bytes, boundary } = await encoded(form);
    const broken = new Error("connection reset");
    async function* breaking() {
      yield bytes.subarray(0, 50_000);
      throw broken;
    }
    await expect(collect(breaking(), boundary)).rejects.toBe(broken);
  });
});

describe("boundaryOf", () => {
  it("takes the boundary of multipart/form-data only", () => {
    expect(boundaryOf('multipart/form-data; boundary="a b"')).toBe("a b");
    expect(boundaryOf("Multipart/Form-Data; charset=utf-8; boundary=xyz")).toBe("xyz");
    for (const bad of [
      undefined,
      "application/json",
      "multipart/form-data",
      "not a type",
      'multipart/form-data; boundary="a\\"b"',
      `multipart/form-data; boundary=${"x".repeat(71)}`,
    ])
      expect(() => boundaryOf(bad)).toThrow(/multipart\/form-data/);
  });
});
