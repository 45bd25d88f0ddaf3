/**
 * Options of the Node HTTP(S) server that serves the API.
 *
 * Node refuses a request line plus headers over 16 KiB with 431 before the app
 * sees it. A query parameter of about 1 MiB (3 MiB once percent-encoded) must
 * instead reach the input guard and get a 400 naming the parameter, so the API
 * server accepts request heads up to {@link MAX_REQUEST_HEAD_BYTES}; past that,
 * and for any request Node cannot parse, {@link answerClientErrors} sends a
 * 400 in the API's error shape rather than Node's bare answer.
 */
import type { Duplex } from "node:stream";

/** What {@link answerClientErrors} needs of a server (an http, https or http2 server). */
export interface ClientErrorSource {
  on(event: "clientError", listener: (error: Error, socket: Duplex) => void): unknown;
}

/** How long a client may take to send its request line and headers. */
export const HEADERS_TIMEOUT_MS = 10_000;

/** Largest accepted request line plus headers. */
export const MAX_REQUEST_HEAD_BYTES = 4 * 1024 * 1024;

/**
 * `serverOptions` for `serve()` of `@hono/node-server` (valid for both
 * `http.createServer` and `https.createServer`).
 *
 * @example
 * const server = serve({ fetch: app.fetch, port, hostname, serverOptions: { ...API_SERVER_OPTIONS } });
 * answerClientErrors(server);
 */
export const API_SERVER_OPTIONS = {
  maxHeaderSize: MAX_REQUEST_HEAD_BYTES,
  // A client must send its whole head within this (Node's default is 60 s), so a slow
  // client holds a large head's buffer only briefly.
  headersTimeout: HEADERS_TIMEOUT_MS,
  // No cap on receiving a whole body (Node's default is 300 s): a multi-GiB file upload streams for
  // longer than that. Other bodies are capped at 4 MiB by the API, and heads by headersTimeout.
  requestTimeout: 0,
} as const;

/** What to answer a request Node could not take. */
export interface ClientErrorAnswer {
  status: 400 | 408;
  code: "invalid_argument" | "deadline_exceeded";
  message: string;
}

/** A complete HTTP/1.1 answer with the API's error shape; the connection is closed after it. */
export function clientErrorResponse(answer: ClientErrorAnswer): string {
  const body = JSON.stringify({ error: { code: answer.code, message: answer.message } });
  const reason = answer.status === 408 ? "Request Timeout" : "Bad Request";
  return (
    `HTTP/1.1 ${answer.status} ${reason}\r\n` +
    "Content-Type: application/json\r\n" +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    "Connection: close\r\n\r\n" +
    body
  );
}

/** The answer to a request Node could not take, by its error code. */
export function clientErrorAnswer(code: string | undefined): ClientErrorAnswer {
  if (code === "ERR_HTTP_REQUEST_TIMEOUT")
    return { status: 408, code: "deadline_exceeded", message: "the request was not received in time" };
  if (code === "HPE_HEADER_OVERFLOW")
    return {
      status: 400,
      code: "invalid_argument",
      message: `request line and headers are larger than ${MAX_REQUEST_HEAD_BYTES / 1024 / 1024} MiB`,
    };
  return { status: 400, code: "invalid_argument", message: "malformed HTTP request" };
}

/**
 * Answers requests Node's parser refuses (too large a head, bad syntax) with a
 * 400 in the API's error shape (408 for a request that took too long), and drops connections that are already gone.
 */
export function answerClientErrors(server: ClientErrorSource): void {
  server.on("clientError", (error, socket) => {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(clientErrorResponse(clientErrorAnswer(code)));
  });
}
