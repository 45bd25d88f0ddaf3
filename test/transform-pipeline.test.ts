/**
 * Anonymisation end to end (issue 11), with a real control plane and real
 * agents on a CRM-like schema: a `transform` pipeline changes every
 * transformed field (≥ 99.9% of non-null values) and nothing else, carries a
 * referenced key's transformer to the referencing column so joins still
 * match, keeps unique keys unique, maps the same email to the same output in
 * two tables and in two runs (a clean second run gives a byte-identical
 * target), leaks no canary value into the control plane's store, its output,
 * the SSE stream, NATS or the target; a lossy transformer on a primary key is
 * a 400 naming the column; `(a+)+$` over 50,000 `a`s and `!` cannot hang a
 * run; and another transform key changes ≥ 99.9% of keyed outputs while the
 * same key on another agent gives the same target.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type DrayStack,
  type StackEnvironment,
  startDrayStack,
  waitForExecution,
} from "./support/dray-stack.js";
import {
  collectNats,
  createPipeline,
  type NatsCollector,
  readEventStream,
  startRun,
} from "./support/executions.js";
import {
  describeRun,
  errorLog,
  planOf,
  rowsDigests,
  runAndWait,
  stageLog,
} from "./support/real-schema-helpers.js";
import {
  CANARIES,
  canaryCounts,
  compareField,
  NO_CANARY,
  pgDump,
  queryDigest,
  REDOS_BODY,
  restartAgentWithKey,
  SHARED_EMAILS,
  TRANSFORMED_FIELDS,
  TX_DATA,
  TX_ENTITIES,
  TX_SCHEMA,
  TX_SIZE,
  TX_TRANSFORMATIONS,
  UNTRANSFORMED,
} from "./support/transform-crm.js";

const KEY_A = "a1".repeat(32);
const KEY_B = "5e".repeat(32);
const TABLES = ["customers", "contacts", "orders"] as const;

let stack: DrayStack;
/** Source with KEY_A. */
let source: StackEnvironment;
/** The same data with KEY_B (later KEY_A). */
let sourceB: StackEnvironment;
let target: StackEnvironment;
let targetB: StackEnvironment;
let nats: NatsCollector;
let pipelineId: string;
/** What the first run left: its id, view, SSE text, and the target's table digests. */
let first:
  | { id: string; view: any; sse: string; sseEnded: boolean; digests: Record<string, unknown> }
  | undefined;
/** Texts the canary test searches besides the store, output and target. */
const apiTexts: string[] = [];

beforeAll(async () => {
  stack = await startDrayStack(inject("databaseUrl"), inject("natsUrl"));
  [source, sourceB, target, targetB] = await Promise.all([
    stack.addEnvironment("tx-src-a", `${TX_SCHEMA}${TX_DATA}`),
    stack.addEnvironment("tx-src-b", `${TX_SCHEMA}${TX_DATA}`),
    stack.addEnvironment("tx-dst-a", TX_SCHEMA),
    stack.addEnvironment("tx-dst-b", TX_SCHEMA),
  ]);
  await Promise.all([restartAgentWithKey(stack, source, KEY_A), restartAgentWithKey(stack, sourceB, KEY_B)]);
  nats = await collectNats(inject("natsUrl"), `dray.${stack.organisationId}.>`);
}, 120_000);

afterAll(async () => {
  await nats?.close();
  await stack?.close();
});

function pipelineBody(name: string, from: StackEnvironment, to: StackEnvironment, extra: object = {}) {
  return {
    name,
    sourceEnvironmentId: from.id,
    targetEnvironmentId: to.id,
    action: "transform",
    writeStrategy: "clean",
    entities: TX_ENTITIES,
    transformations: TX_TRANSFORMATIONS,
    batchSize: 2_000,
    ...extra,
  };
}

/** Runs a pipeline, reading its SSE stream to the end; keeps the API's answers for the canary test. */
async function runWithStream(id: string) {
  const started = performance.now();
  const run = await startRun(stack.api, id);
  const sse = await readEventStream(
    `${stack.cp.httpUrl}/api/v1/executions/${run.id}/events`,
    stack.apiToken,
    { timeoutMs: 150_000 },
  );
  const view = await waitForExecution(stack.api, run.id, 150_000);
  const seconds = (performance.now() - started) / 1000;
  apiTexts.push(JSON.stringify(view), JSON.stringify(await errorLog(stack.api, run.id)));
  apiTexts.push(JSON.stringify(await stageLog(stack.api, run.pipelineToken)));
  apiTexts.push(
    JSON.stringify((await stack.api.get(`/api/v1/executions/${run.id}/batches?pageSize=100`)).body),
  );
  const sseText = sse.events.map((e) => `${e.event} ${e.data}`).join("\n");
  apiTexts.push(sseText);
  return { id: run.id, view, sse: sseText, sseEnded: sse.ended, seconds };
}

async function joinCount(sql: DrayStack["store"]["sql"]): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from orders o join contacts c on c.email = o.contact_email`;
  return row!.n;
}

describe("a transform pipeline on a CRM-like schema", () => {
  it("saves the pipeline and shows the FK-carried transformation", async () => {
    pipelineId = await createPipeline(stack.api, pipelineBody("crm-anonymised", source, target));
    const shown = await stack.api.get(`/api/v1/pipelines/${pipelineId}`);
    expect(shown.status).toBe(200);
    expect(shown.body.action).toBe("transform");
    expect(shown.body.transformations).toHaveLength(TX_TRANSFORMATIONS.length);
    const carried = (shown.body.effectiveTransformations ?? []).find(
      (t: any) => t.entity === "public.orders" && t.field === "contact_email",
    );
    expect(carried, JSON.stringify(shown.body.effectiveTransformations)).toMatchObject({
      transformer: "email",
      propagatedFrom: "public.contacts.email",
    });
    // The plan shows it too, on the referencing entity.
    const plan = await planOf(stack.api, pipelineId);
    const orders = plan.entities.find((e: any) => e.entity === "public.orders");
    expect(orders?.transformations ?? [], JSON.stringify(orders)).toContainEqual(
      expect.objectContaining({ field: "contact_email", propagatedFrom: "public.contacts.email" }),
    );
  });

  it("completes: transformed fields differ, the rest is byte-equal, joins and unique keys hold", async () => {
    expect(pipelineId, "the saved pipeline").toBeDefined();
    const run = await runWithStream(pipelineId);
    console.info(
      `transform run of ${TX_SIZE.customers + TX_SIZE.contacts + TX_SIZE.orders} rows: ${run.seconds.toFixed(1)} s`,
    );
    expect(run.view.status, describeRun(run.view)).toBe("completed");
    expect(run.view.totals).toMatchObject({ failed: 0, skipped: 0 });

    for (const table of TABLES) {
      const [src, dst] = await Promise.all([
        queryDigest(source.db.sql, UNTRANSFORMED[table]!),
        queryDigest(target.db.sql, UNTRANSFORMED[table]!),
      ]);
      expect(src.rows, table).toBe(TX_SIZE[table]);
      expect(dst, `${table}: untransformed columns`).toEqual(src);
    }
    for (const f of TRANSFORMED_FIELDS) {
      const c = await compareField(source.db.sql, target.db.sql, f);
      expect(c.nonNull, `${f.table}.${f.field} has values`).toBeGreaterThan(1000);
      expect(c.nullMismatch, `${f.table}.${f.field}: NULL stays NULL`).toBe(0);
      expect(c.ratio, `${f.table}.${f.field}: ${c.differing}/${c.nonNull} differ`).toBeGreaterThanOrEqual(
        0.999,
      );
    }
    const [srcJoin, dstJoin] = await Promise.all([joinCount(source.db.sql), joinCount(target.db.sql)]);
    expect(srcJoin).toBeGreaterThan(TX_SIZE.orders * 0.8);
    expect(dstJoin, "orders ⋈ contacts on the transformed email").toBe(srcJoin);
    const [fk] = await target.db.sql<{ n: number }[]>`
      select count(*)::int as n from orders o join customers c on c.id = o.customer_id`;
    expect(fk!.n).toBe(TX_SIZE.orders);
    const [distinct] = await target.db.sql<{ customers: number; contacts: number }[]>`
      select (select count(distinct email)::int from customers) as customers,
             (select count(distinct email)::int from contacts) as contacts`;
    expect(distinct).toEqual({ customers: TX_SIZE.customers, contacts: TX_SIZE.contacts });
    // The transformers did what they say: fake emails, E.164 phones, cities in the arrays.
    const [shape] = await target.db.sql<{ emails: number; phones: number; masked: number }[]>`
      select (select count(*)::int from customers where email like '%@%.%') as emails,
             (select count(*)::int from customers where phone ~ '^\\+[1-9][0-9]{6,14}$') as phones,
             (select count(*)::int from contacts where phone like '%XXXX') as masked`;
    expect(shape!.emails).toBe(TX_SIZE.customers);
    const [counts] = await source.db.sql<{ phones: number; cphones: number }[]>`
      select (select count(phone)::int from customers) as phones, (select count(phone)::int from contacts) as cphones`;
    expect(shape!.phones).toBe(counts!.phones);
    expect(shape!.masked).toBe(counts!.cphones);

    first = {
      id: run.id,
      view: run.view,
      sse: run.sse,
      sseEnded: run.sseEnded,
      digests: await rowsDigests(target.db.sql, [...TABLES]),
    };
  }, 180_000);

  it("maps the same email to the same output in customers, contacts and orders", async () => {
    expect(first, "the first run").toBeDefined();
    const rows = await target.db.sql<{ n: number; same: number }[]>`
      select count(*)::int as n, count(*) filter (where cu.email = co.email)::int as same
      from customers cu join contacts co on co.contact_no = cu.id
      where cu.id <= ${SHARED_EMAILS}`;
    expect(rows[0]).toEqual({ n: SHARED_EMAILS, same: SHARED_EMAILS });
    // The canary customer's email, its contact's and its orders' contact_email are one output.
    const [one] = await target.db.sql<{ n: number }[]>`
      select count(distinct v)::int as n from (
        select email as v from customers where id = 1
        union all select email from contacts where contact_no = 1
        union all select contact_email from orders where id <= 3) s`;
    expect(one!.n).toBe(1);
  });

  it("a second clean run (other batch size) gives a byte-identical target", async () => {
    expect(first, "the first run").toBeDefined();
    const patched = await stack.api.patch(`/api/v1/pipelines/${pipelineId}`, { batchSize: 777 });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const run = await runWithStream(pipelineId);
    expect(run.view.status, describeRun(run.view)).toBe("completed");
    expect(await rowsDigests(target.db.sql, [...TABLES])).toEqual(first!.digests);
  }, 180_000);

  it("refuses a lossy transformer on a primary key with a 400 naming the column", async () => {
    const pk = await stack.api.post(
      "/api/v1/pipelines",
      pipelineBody("lossy-pk", source, target, {
        transformations: [
          { entity: "public.contacts", field: "email", transformer: "constant", options: { value: "x@y.z" } },
        ],
      }),
    );
    expect(pk.status, JSON.stringify(pk.body)).toBe(400);
    const pkText = JSON.stringify(pk.body.error);
    expect(pkText).toContain("contacts");
    expect(pkText).toContain("email");
    // A key-safe transformer on the same key is accepted.
    const ok = await stack.api.post(
      "/api/v1/pipelines",
      pipelineBody("hash-pk", source, target, {
        transformations: [{ entity: "public.contacts", field: "email", transformer: "hash", options: {} }],
      }),
    );
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
  });

  it("refuses a lossy transformer on a unique column (not the row key) with a 400 naming the column", async () => {
    const unique = await stack.api.post(
      "/api/v1/pipelines",
      pipelineBody("lossy-unique", source, target, {
        transformations: [
          { entity: "public.customers", field: "email", transformer: "mask", options: { keepFirst: 2 } },
        ],
      }),
    );
    expect(unique.status, JSON.stringify(unique.body)).toBe(400);
    const text = JSON.stringify(unique.body.error);
    expect(text).toContain("customers");
    expect(text).toContain("email");
  });

  it("cannot hang on (a+)+$ over 50,000 a's and '!': refused at save or a prompt run", async () => {
    const body = {
      name: "redos",
      sourceEnvironmentId: source.id,
      targetEnvironmentId: target.id,
      action: "transform",
      writeStrategy: "clean",
      entities: ["public.redos"],
      transformations: [
        {
          entity: "public.redos",
          field: "body",
          transformer: "regexp_replace",
          options: { pattern: "(a+)+$", replacement: "x" },
        },
      ],
    };
    const saved = await stack.api.post("/api/v1/pipelines", body);
    if (saved.status === 400) {
      console.info(`(a+)+$ refused at save: ${JSON.stringify(saved.body.error)}`);
      expect(JSON.stringify(saved.body.error)).toContain("body");
      return;
    }
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    const run = await runAndWait(stack.api, saved.body.id, 60_000);
    console.info(
      `(a+)+$ over ${REDOS_BODY.length} characters: run ${run.durationMs} ms (executor: ${run.view.durationMs} ms)`,
    );
    expect(run.view.status, describeRun(run.view)).toBe("completed");
    const rows = await target.db.sql<{ id: string; body: string | null }[]>`
      select id::text, body from redos order by id`;
    // RE2 semantics: no match before '!', so the long value is kept; 'baaa' → 'bx'.
    expect(rows.map((r) => [r.id, r.body === REDOS_BODY ? "unchanged" : r.body])).toEqual([
      ["1", "unchanged"],
      ["2", "bx"],
      ["3", null],
    ]);
  }, 90_000);

  it("another transform key changes ≥ 99.9% of keyed outputs; the same key on another agent does not", async () => {
    expect(first, "the first run").toBeDefined();
    const rotatedId = await createPipeline(stack.api, pipelineBody("crm-anonymised-key-b", sourceB, targetB));
    const rotated = await runWithStream(rotatedId);
    expect(rotated.view.status, describeRun(rotated.view)).toBe("completed");
    for (const f of TRANSFORMED_FIELDS) {
      const c = await compareField(target.db.sql, targetB.db.sql, f);
      if (f.keyed)
        expect(c.ratio, `${f.table}.${f.field}: ${c.differing}/${c.nonNull} differ`).toBeGreaterThanOrEqual(
          0.999,
        );
      else expect(c.differing, `${f.table}.${f.field} does not depend on the key`).toBe(0);
    }
    for (const table of TABLES)
      expect(await queryDigest(targetB.db.sql, UNTRANSFORMED[table]!)).toEqual(
        await queryDigest(target.db.sql, UNTRANSFORMED[table]!),
      );
    // Key A on the other source agent: byte-identical to the first target.
    await restartAgentWithKey(stack, sourceB, KEY_A);
    const same = await runWithStream(rotatedId);
    expect(same.view.status, describeRun(same.view)).toBe("completed");
    expect(await rowsDigests(targetB.db.sql, [...TABLES])).toEqual(first!.digests);
  }, 300_000);

  it("leaves no canary in the store, the control plane's output, SSE, NATS, the API or the target", async () => {
    expect(first, "the first run").toBeDefined();
    expect(first!.sseEnded, "the SSE stream was read to its end").toBe(true);
    expect(first!.sse).toContain("execution.status");
    // Sanity: the source holds every canary.
    const sourceCounts = canaryCounts(await pgDump(source.db.url));
    for (const [name, n] of Object.entries(sourceCounts))
      expect(n, `${name} in the source`).toBeGreaterThan(0);

    const places: Record<string, string> = {
      store: await pgDump(stack.store.url),
      "control plane output": stack.cp.output(),
      "target agent output": target.agent.output() + targetB.agent.output(),
      // The source agents' own logs show only transformed values too.
      "source agent output": source.agent.output() + sourceB.agent.output(),
      target: (await pgDump(target.db.url)) + (await pgDump(targetB.db.url)),
      SSE: first!.sse,
      NATS: nats.messages.map((m) => `${m.subject} ${JSON.stringify(m.data)}`).join("\n"),
      API: apiTexts.join("\n"),
    };
    expect(places.store!.length).toBeGreaterThan(1000);
    expect(places.NATS!.length).toBeGreaterThan(0);
    const found = Object.fromEntries(Object.entries(places).map(([k, text]) => [k, canaryCounts(text)]));
    expect(found).toEqual(Object.fromEntries(Object.keys(places).map((k) => [k, NO_CANARY])));
    expect(Object.keys(CANARIES)).toHaveLength(5);
  }, 120_000);
});
