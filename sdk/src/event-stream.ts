import { createParser, type EventSourceMessage } from "eventsource-parser";
import { DrayApiError, DrayConnectionError } from "./errors.js";

/** One execution event from the SSE stream (same payload as on NATS). */
export interface ExecutionEvent {
  /** The SSE id: the event's per-execution sequence number. */
  id: string;
  /** `execution.status`, `execution.progress`, `execution.stage`, `execution.error`, … */
  type: string;
  data: Record<string, unknown> & { seq?: number; status?: string };
}

/** Execution statuses after which nothing changes any more. */
export const FINAL_STATUSES: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);

/**
 * Reads `GET /executions/:id/events` as an async iterator. When the connection
 * drops it reconnects with `Last-Event-ID`, so no event is lost or repeated;
 * it ends after the final status event, or when `signal` aborts.
 */
export async function* followEvents(options: {
  url: string;
  token: string;
  fetch: typeof fetch;
  signal?: AbortSignal;
  lastEventId?: string;
  /** Delay before reconnecting. @default 500 */
  retryMs?: number;
}): AsyncGenerator<ExecutionEvent> {
  let lastEventId = options.lastEventId;
  let failures = 0;
  for (;;) {
    if (options.signal?.aborted) return;
    let response: Response;
    try {
      response = await options.fetch(options.url, {
        headers: {
          authorization: `Bearer ${options.token}`,
          accept: "text/event-stream",
          ...(lastEventId ? { "last-event-id": lastEventId } : {}),
        },
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (options.signal?.aborted) return;
      if (++failures > 5) throw new DrayConnectionError(options.url, error);
      await new Promise((r) => setTimeout(r, options.retryMs ?? 500));
      continue;
    }
    if (!response.ok || !response.body) {
      const body = (await response.json().catch(() => undefined)) as
        | { error?: { code: string; message: string } }
        | undefined;
      throw new DrayApiError(
        response.status,
        body?.error?.code ?? "unknown",
        body?.error?.message ?? response.statusText,
      );
    }
    failures = 0;
    const queue: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (e) => queue.push(e) });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        while (queue.length) {
          const message = queue.shift()!;
          if (message.id) lastEventId = message.id;
          const data = JSON.parse(message.data) as ExecutionEvent["data"];
          yield { id: message.id ?? "", type: message.event ?? String(data.type ?? "message"), data };
          if (data.type === "execution.status" && FINAL_STATUSES.has(String(data.status))) return;
        }
      }
      // The server ends the stream only once the execution is final and every event was sent.
      return;
    } catch (error) {
      if (options.signal?.aborted) return;
      if (!(error instanceof TypeError) && (error as Error).name !== "AbortError") throw error;
    }
    // A dropped connection: resume after the last event seen.
    await new Promise((r) => setTimeout(r, options.retryMs ?? 500));
  }
}
