/**
 * Consuming postgres.js's `COPY … TO STDOUT` stream without leaving its
 * connection stuck.
 *
 * Why a COPY TO could hang the connection (postgres.js 3.4.9, connection.js):
 * each CopyData message is pushed into a Readable whose `read()` is
 * `socket.resume()`, and when `push()` returns false (the stream's buffer is
 * past its high-water mark) the socket is paused: `stream.push(row) ||
 * socket.pause()`. The socket is resumed only when the Readable asks for more
 * through `read()` — which Node never does once the stream has ended (CopyDone
 * pushed `null`) or was destroyed (an error). So when the last rows, CopyDone,
 * and possibly CommandComplete and ReadyForQuery, arrive in the same socket
 * read as a push that overflowed the buffer, the socket stays paused for good:
 * ReadyForQuery (or the answer to the next statement) is never read, and the
 * connection hangs. This happens even with a `data` listener, because the
 * stream reaches the caller through a promise: every row of the first socket
 * read is buffered before anyone listens, so a COPY whose whole output (more
 * than 16 KiB) fits in one read hangs every time; async iteration also
 * overflows the buffer on the last read of a large COPY.
 *
 * The way around it, in {@link drainCopyOut}: consume in flowing mode (no
 * buffering after the first read, so no further pauses), never destroy the
 * stream ourselves (postgres.js would keep pushing into a destroyed stream,
 * whose `push()` returns false and pauses the socket again), and once the
 * stream has closed, whatever ended it, call its own `read()` once: that
 * resumes the socket postgres.js paused. Resuming a socket that is not paused
 * does nothing.
 */
import { finished, type Readable } from "node:stream";

/**
 * Calls the stream's `read()` implementation, which for postgres.js's COPY
 * streams is `socket.resume()` on the stream's connection. A connection that
 * is already gone has no socket left to resume; that error is ignored.
 */
function resumeSocket(stream: Readable): void {
  const read = (stream as unknown as { _read?: (size: number) => void })._read;
  try {
    read?.call(stream, 0);
  } catch {
    // The connection closed; the pool replaces it.
  }
}

/**
 * Hands every chunk of a COPY TO stream to `onData` (synchronously, in order;
 * postgres.js emits one chunk per CopyData message, which the server sends per
 * row) and settles once the stream has closed: resolves after the end, rejects
 * with the stream's error (e.g. the server cancelled the COPY). When `onData`
 * throws, the remaining chunks are skipped but still drained, and the error is
 * rethrown after the end. The connection's socket is always resumed afterwards
 * (see the module comment).
 */
export function drainCopyOut(stream: Readable, onData: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let failed = false;
    let failure: unknown;
    stream.on("data", (chunk: Buffer) => {
      if (failed) return;
      try {
        onData(chunk);
      } catch (error) {
        failed = true;
        failure = error;
      }
    });
    finished(stream, (error) => {
      resumeSocket(stream);
      if (error) reject(error);
      else if (failed) reject(failure);
      else resolve();
    });
  });
}
