/**
 * The pull reader under Dray's tar stream reader: it takes byte pieces as
 * they are asked for and keeps one pending buffer (less than a block plus one
 * piece), so neither an archive nor an entry is ever held whole. Running out
 * of input where bytes are still owed throws `invalid_argument` (truncated).
 */
import { bufferOf } from "./byte-pieces.js";
import { corruptTar } from "./tar-headers.js";

/** A pull reader over byte pieces with one pending buffer (less than a block plus one piece). */
export class BlockReader {
  private buffer: Buffer = Buffer.alloc(0);
  private ended = false;

  /** Reads from `source`, one piece at a time, as bytes are asked for. */
  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Bytes buffered. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Appends the next non-empty piece; false at the end. */
  private async more(): Promise<boolean> {
    while (!this.ended) {
      const next = await this.source.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      if (next.value.byteLength === 0) continue;
      const piece = bufferOf(next.value);
      this.buffer = this.buffer.length === 0 ? piece : Buffer.concat([this.buffer, piece]);
      return true;
    }
    return false;
  }

  /** True once `bytes` bytes are buffered; false when the input ends first. */
  async want(bytes: number): Promise<boolean> {
    while (this.buffer.length < bytes) if (!(await this.more())) return false;
    return true;
  }

  /** Exactly `bytes` bytes (a header or small metadata); throws when the input ends first. */
  async exact(bytes: number, what: string): Promise<Buffer> {
    if (!(await this.want(bytes))) throw corruptTar(`it ends inside ${what} (truncated?)`);
    const out = this.buffer.subarray(0, bytes);
    this.buffer = this.buffer.subarray(bytes);
    return out;
  }

  /** The next 1 to `bytes` bytes, as buffered; throws when the input ends first. */
  async upTo(bytes: number, what: string): Promise<Buffer> {
    if (this.buffer.length === 0 && !(await this.more()))
      throw corruptTar(`it ends inside ${what} (truncated?)`);
    const take = Math.min(bytes, this.buffer.length);
    const out = this.buffer.subarray(0, take);
    this.buffer = this.buffer.subarray(take);
    return out;
  }

  /** Skips `bytes` bytes; throws when the input ends first. */
  async skip(bytes: number, what: string): Promise<void> {
    let left = bytes;
    while (left > 0) left -= (await this.upTo(left, what)).length;
  }

  /** Reads and drops the rest of the input (a gzip stream checks its trailer on the way). */
  async drain(): Promise<void> {
    this.buffer = Buffer.alloc(0);
    while (await this.more()) this.buffer = Buffer.alloc(0);
  }
}
