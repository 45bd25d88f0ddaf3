/**
 * Helpers of the execution end-to-end tests: pipelines and runs through the
 * API, table digests to compare source and target, and readers of the event
 * stream (SSE over fetch) and of NATS subjects.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type postgres from "postgres";
import type { ApiClient } from "./api-client.js";

/** What a table holds: its row count and an md5 over its rows ordered by `id`. */
export interface TableDigest {
  rows: number;
  md5: string | null;
}

/** Row count and md5(string_agg(t::text, ',' order by id)) of `table`. */
export async function tableDigest(sql: postgres.Sql, table: string): Promise<TableDigest> {
  const [row] = await sql.unsafe<{ rows: number; md5: string | null }[]>(
    `select count(*)::int as rows, md5(string_agg(t::text, ',' order by t.id)) as md5 from ${table} t`,
  );
  return { rows: row!.rows, md5: row!.md5 };
}

/** Digests of several tables, by name. */
export async function tableDigests(
  sql: postgres.Sql,
  tables: readonly string[],
): Promise<Record<string, TableDigest>> {
  const out: Record<string, TableDigest> = {};
  for (const t of tables) out[t] = await tableDigest(sql, t);
  return out;
}

/** Number of rows of `table`. */
export async function countRows(sql: postgres.Sql, table: string): Promise<number> {
  const [row] = await sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table}`);
  return row!.n;
}

/** Creates a pipeline (201 expected) and returns its id. */
export async function createPipeline(api: ApiClient, body: Record<string, unknown>): Promise<string> {
  const r = await api.post("/api/v1/pipelines", body);
  if (r.status !== 201) throw new Error(`cannot create pipeline: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id as string;
}

/** Starts a run of the pipeline (202 expected) and returns `{ id, pipelineToken }`. */
export async function startRun(
  api: ApiClient,
  pipelineId: string,
): Promise<{ id: string; pipelineToken: string }> {
  const r = await api.post(`/api/v1/pipelines/${pipelineId}/executions`);
  if (r.status !== 202) throw new Error(`cannot start a run: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** The execution's view (GET /executions/:id). */
export async function executionOf(api: ApiClient, id: string): Promise<any> {
  const r = await api.get(`/api/v1/executions/${id}`);
  if (r.status !== 200) throw new Error(`cannot read execution ${id}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/**
 * Waits until the execution has processed at least `records` records while
 * still in progress; throws at once when it ends first.
 */
export async function waitForProgress(api: ApiClient, id: string, records: number, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const view = await executionOf(api, id);
    if (["completed", "failed", "cancelled"].includes(view.status))
      throw new Error(`execution ended (${view.status}: ${view.reason}) before ${records} records`);
    if (view.status === "in_progress" && view.totals.processed >= records) return view;
    if (Date.now() > until)
      throw new Error(`execution did not reach ${records} records within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every page of an execution's list endpoint (`errors` or `batches`). */
export async function allPages(api: ApiClient, path: string, key: "errors" | "batches"): Promise<any[]> {
  const out: any[] = [];
  for (let page = 1; ; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const r = await api.get(`${path}${sep}page=${page}&pageSize=100`);
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    out.push(...r.body[key]);
    if (out.length >= r.body.total || r.body[key].length === 0) return out;
  }
}

/** One server-sent event. */
export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/**
 * Reads an SSE stream with fetch until the server ends it (or `timeoutMs`),
 * parsing `id:`, `event:` and `data:` lines; comments (pings) are skipped.
 */
export async function readEventStream(
  url: string,
  token: string,
  options: { lastEventId?: number; timeoutMs?: number } = {},
): Promise<{ status: number; contentType: string | null; events: SseEvent[]; ended: boolean }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 120_000);
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "text/event-stream" };
  if (options.lastEventId !== undefined) headers["last-event-id"] = String(options.lastEventId);
  const events: SseEvent[] = [];
  let ended = false;
  try {
    const response = await fetch(url, { headers, signal: controller.signal });
    const contentType = response.headers.get("content-type");
    if (!response.body) return { status: response.status, contentType, events, ended: true };
    const decoder = new TextDecoder();
    let buffer = "";
    let current: SseEvent = { id: undefined, event: undefined, data: "" };
    let hasData = false;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
          const line = buffer.slice(0, at).replace(/\r$/, "");
          buffer = buffer.slice(at + 1);
          if (line === "") {
            if (hasData) events.push(current);
            current = { id: undefined, event: undefined, data: "" };
            hasData = false;
          } else if (line.startsWith(":")) {
            // comment (ping)
          } else {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "id") current.id = value;
            else if (field === "event") current.event = value;
            else if (field === "data") {
              current.data = hasData ? `${current.data}\n${value}` : value;
              hasData = true;
            }
          }
        }
      }
      ended = true;
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
    return { status: response.status, contentType, events, ended };
  } finally {
    clearTimeout(timer);
  }
}

/** Messages received on a NATS subject, collected from the moment of subscription. */
export interface NatsCollector {
  messages: { subject: string; data: any }[];
  close(): Promise<void>;
}

/** Subscribes to `subject` (wildcards allowed) and collects the JSON messages. */
export async function collectNats(natsUrl: string, subject: string): Promise<NatsCollector> {
  const nc: NatsConnection = await connect({ servers: natsUrl });
  const messages: { subject: string; data: any }[] = [];
  nc.subscribe(subject, {
    callback: (error, msg) => {
      if (!error) messages.push({ subject: msg.subject, data: msg.json() });
    },
  });
  await nc.flush();
  return {
    messages,
    close: () => nc.close(),
  };
}

/**
 * Transactions of the agent left open in a database: sessions of `dray-agent`
 * that are idle in a transaction or still running a statement.
 */
export async function openAgentWork(sql: postgres.Sql): Promise<{ state: string; query: string }[]> {
  return sql<{ state: string; query: string }[]>`
    select state, query from pg_stat_activity
    where datname = current_database() and application_name = 'dray-agent' and pid <> pg_backend_pid()
      and (state in ('idle in transaction', 'idle in transaction (aborted)') or (state = 'active' and query !~* 'pg_stat_activity'))`;
}

/** Waits until an agent session of the database sleeps in `pg_sleep` (a slow trigger in a batch being written). */
export async function waitForAgentSleep(sql: postgres.Sql, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and application_name = 'dray-agent' and wait_event = 'PgSleep'`;
    if (row!.n > 0) return;
    if (Date.now() > until) throw new Error(`no agent session slept within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
