/**
 * Test fixtures for Dray's archive readers (used by the `*.test.ts` files
 * beside it, never by the control plane): tar bytes built block by block as
 * GNU tar and bsdtar write them, byte pieces of any size, and small readers
 * of what the code under test gives back.
 */

/** Options of a test tar header: type flag, ustar prefix, GNU magic, link target. */
export interface TestHeaderOptions {
  type?: string;
  prefix?: string;
  gnu?: boolean;
  linkname?: string;
}

/** One tar header block, as GNU tar and bsdtar write them. */
export function header(name: string, size: number, options: TestHeaderOptions = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100, "latin1");
  h.write("0001750\0", 108, "latin1");
  h.write("0001750\0", 116, "latin1");
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
  h.write("14771734401\0", 136, "latin1");
  h.write(options.type ?? "0", 156, "latin1");
  if (options.linkname) h.write(options.linkname, 157, 100, "utf8");
  if (options.gnu) h.write("ustar  \0", 257, "latin1");
  else h.write("ustar\u000000", 257, "latin1");
  if (options.prefix) h.write(options.prefix, 345, 155, "utf8");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return h;
}

/** A header, its data and the padding to the next block. */
export function entry(name: string, data: string | Buffer, options: TestHeaderOptions = {}): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  const pad = (512 - (bytes.length % 512)) % 512;
  return Buffer.concat([header(name, bytes.length, options), bytes, Buffer.alloc(pad)]);
}

/** A pax extended header entry with these records. */
export function paxEntry(records: Record<string, string>): Buffer {
  let text = "";
  for (const [key, value] of Object.entries(records)) {
    const body = ` ${key}=${value}\n`;
    let length = Buffer.byteLength(body) + 1;
    while (Buffer.byteLength(`${length}${body}`) !== length) length++;
    text += `${length}${body}`;
  }
  return entry("PaxHeader/x", text, { type: "x" });
}

/** A tar of these entries with its end-of-archive blocks. */
export function tarOf(...entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, Buffer.alloc(1024)]);
}

/** The bytes cut into pieces of `size`. */
export async function* pieces(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/** Every byte of a source, in one Buffer. */
export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const piece of source) out.push(Buffer.from(piece));
  return Buffer.concat(out);
}

/** The error a promise rejects with (anything thrown that is not an Error is rethrown). */
export async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Error) return error;
    throw error;
  }
  throw new Error("expected a failure");
}

/** A small CSV file. */
export const CSV_A = "id,name\n1,a\n2,b\n";
/** Another small CSV file. */
export const CSV_B = "id,name\n3,c\n";

/**
 * A tar of every kind of entry: a directory, two CSV files, a symlink, a
 * hard link, AppleDouble and `__MACOSX` metadata, `.DS_Store`, an empty file.
 */
export const SAMPLE = tarOf(
  entry("data/", "", { type: "5" }),
  entry("data/a.csv", CSV_A),
  entry("data/link.csv", "", { type: "2", linkname: "a.csv" }),
  entry("data/hard.csv", "", { type: "1", linkname: "data/a.csv" }),
  entry("data/._a.csv", "apple double"),
  entry("__MACOSX/data/b.csv", "resource fork"),
  entry(".DS_Store", "finder"),
  entry("data/empty.csv", ""),
  entry("./data/b.csv", CSV_B),
);
