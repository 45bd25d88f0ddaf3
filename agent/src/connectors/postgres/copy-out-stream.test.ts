import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { drainCopyOut } from "./copy-out-stream.js";

/** A stream shaped like postgres.js's COPY TO stream: `read()` resumes the (here counted) socket. */
function copyStream() {
  const socket = { resumed: 0 };
  const stream = new Readable({
    read() {
      socket.resumed++;
    },
  });
  return { stream, socket };
}

describe("drainCopyOut", () => {
  it("hands over chunks pushed before and after it listens, then resumes the socket once ended", async () => {
    const { stream, socket } = copyStream();
    // More than the buffer holds, and the end, before anyone listens: the case that left the socket paused.
    const early = Array.from({ length: 40 }, (_, i) => Buffer.from(`${i}\t${"x".repeat(1000)}\n`));
    for (const chunk of early) stream.push(chunk);
    stream.push(null);
    const seen: Buffer[] = [];
    const resumedBefore = socket.resumed;
    await drainCopyOut(stream, (chunk) => seen.push(chunk));
    expect(seen).toEqual(early);
    expect(socket.resumed).toBeGreaterThan(resumedBefore);
  });

  it("rejects with the stream's error and still resumes the socket", async () => {
    const { stream, socket } = copyStream();
    stream.push(Buffer.from("1\n"));
    const drained = drainCopyOut(stream, () => {});
    setImmediate(() => stream.destroy(Object.assign(new Error("canceling statement"), { code: "57014" })));
    await expect(drained).rejects.toMatchObject({ code: "57014" });
    expect(socket.resumed).toBeGreaterThan(0);
  });

  it("keeps draining after onData throws, then rejects with that error", async () => {
    const { stream } = copyStream();
    let calls = 0;
    const drained = drainCopyOut(stream, () => {
      calls++;
      throw new Error("bad row");
    });
    stream.push(Buffer.from("1\n"));
    stream.push(Buffer.from("2\n"));
    stream.push(null);
    await expect(drained).rejects.toThrow("bad row");
    expect(calls).toBe(1);
    expect(stream.readableEnded).toBe(true);
  });
});
