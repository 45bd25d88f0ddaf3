/**
 * The transform end-to-end test's dataset and helpers
 * (test/transform-pipeline.test.ts): a CRM-like schema (customers, contacts
 * whose email is a referenced primary key, orders referencing both, and a
 * `redos` table for a pathological pattern), canary values planted in the
 * transformed fields, the pipeline's transformation rules, per-row
 * comparisons of transformed fields, md5 digests of the untransformed ones,
 * `pg_dump` as text, and restarting an agent with a given transform key.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type postgres from "postgres";
import { eventually } from "./api-client.js";
import type { DrayStack, StackEnvironment } from "./dray-stack.js";
import { startAgentProcess } from "./processes.js";

const run = promisify(execFile);

/** Rows of each table the source gets. */
export const TX_SIZE = { customers: 10_000, contacts: 8_000, orders: 20_000 } as const;

/** Contacts `1..SHARED_EMAILS` have the email of the customer with the same number. */
export const SHARED_EMAILS = 4_000;

/** Values planted in transformed fields: none may leave the source environment. */
export const CANARIES = {
  email: "canary-a1b2c3@example.com",
  fullName: "Canary Person 9x7",
  phone: "+15550100999",
  jsonEmail: "canary-json-5k2q@example.com",
  tag: "canary-tag-7q4w",
} as const;

/** A text of `a` × 50,000 then `!`: `(a+)+$` backtracks exponentially on it. */
export const REDOS_BODY = `${"a".repeat(50_000)}!`;

/** The schema, the same on source and target. */
export const TX_SCHEMA = `
create table customers (
  id bigint primary key,
  email text unique not null,
  full_name text,
  phone text,
  notes jsonb,
  tags text[],
  segment text not null,
  created_at timestamptz not null
);
create table contacts (
  email text primary key,
  contact_no integer not null unique,
  name text not null,
  phone text,
  origin text
);
create table orders (
  id bigint primary key,
  customer_id bigint not null references customers (id),
  contact_email text references contacts (email),
  amount numeric(12, 2) not null,
  placed_at date not null
);
create index on orders (contact_email);
create table redos (id bigint primary key, body text);
`;

/** The source's rows, generated in SQL, with the canaries in customer 1, contact 1 and orders 1–3. */
export const TX_DATA = `
insert into customers
select i,
       case when i = 1 then '${CANARIES.email}' else 'user-' || i || '@example.com' end,
       case when i = 1 then '${CANARIES.fullName}' when i % 17 = 0 then null else 'Given' || i || ' Family' || (i % 97) end,
       case when i = 1 then '${CANARIES.phone}' when i % 19 = 0 then null else '+1555' || lpad(((i * 7919) % 10000000)::text, 7, '0') end,
       case when i = 1 then jsonb_build_object('email', '${CANARIES.jsonEmail}', 'score', 1, 'note', 'keep me 1')
            when i % 11 = 0 then null
            else jsonb_build_object('email', 'n' || i || '@mail.test', 'score', i % 100, 'note', 'keep me ' || i) end,
       case when i = 1 then array['${CANARIES.tag}', 'grp-1', 'x1']
            when i % 13 = 0 then null
            else array['tag-' || (i % 50), 'grp-' || (i % 7), 'x' || i] end,
       (array['smb', 'mid', 'enterprise'])[1 + i % 3],
       timestamptz '2024-01-01 00:00:00+00' + make_interval(mins => i * 37)
from generate_series(1, ${TX_SIZE.customers}) i;

insert into contacts
select case when i <= ${SHARED_EMAILS} then (select email from customers where id = i) else 'contact-' || i || '@corp.test' end,
       i,
       'Contact ' || i,
       case when i = 1 then '${CANARIES.phone}' when i % 23 = 0 then null else '+4420' || lpad(((i * 104729) % 100000000)::text, 8, '0') end,
       (array['web', 'fair', 'referral'])[1 + i % 3]
from generate_series(1, ${TX_SIZE.contacts}) i;

insert into orders
select i,
       1 + (i * 37) % ${TX_SIZE.customers},
       case when i <= 3 then '${CANARIES.email}'
            when i % 10 = 0 then null
            else (select email from contacts where contact_no = 1 + (i * 53) % ${TX_SIZE.contacts}) end,
       round(((i * 7717) % 100000) / 7.0, 2),
       date '2024-01-01' + (i % 700)
from generate_series(1, ${TX_SIZE.orders}) i;

insert into redos values (1, repeat('a', 50000) || '!'), (2, 'baaa'), (3, null);
analyze;
`;

/** The entities of the main pipeline (redos has its own). */
export const TX_ENTITIES = ["public.customers", "public.contacts", "public.orders"];

/** The transformation rules of the main pipeline. */
export const TX_TRANSFORMATIONS = [
  { entity: "public.customers", field: "email", transformer: "email", options: {} },
  { entity: "public.customers", field: "full_name", transformer: "full_name", options: {} },
  { entity: "public.customers", field: "phone", transformer: "phone", options: {} },
  {
    entity: "public.customers",
    field: "notes",
    transformer: "json_path",
    options: { path: "$.email", transformer: { name: "email", options: {} } },
  },
  {
    entity: "public.customers",
    field: "tags",
    transformer: "array_each",
    options: { transformer: { name: "city", options: {} } },
  },
  { entity: "public.contacts", field: "email", transformer: "email", options: {} },
  {
    entity: "public.contacts",
    field: "phone",
    transformer: "regexp_replace",
    options: { pattern: "\\d{4}$", replacement: "XXXX" },
  },
];

/**
 * A transformed field and how to pair its rows between two databases:
 * `select <key>, <expr>` from the table; `keyed` when the output depends on
 * the transform key (regexp_replace with a fixed replacement does not).
 */
export interface TransformedField {
  table: string;
  field: string;
  key: string;
  expr: string;
  keyed: boolean;
}

/** Every field the main pipeline transforms, including the one the FK carries the email to. */
export const TRANSFORMED_FIELDS: TransformedField[] = [
  { table: "customers", field: "email", key: "id", expr: "email", keyed: true },
  { table: "customers", field: "full_name", key: "id", expr: "full_name", keyed: true },
  { table: "customers", field: "phone", key: "id", expr: "phone", keyed: true },
  { table: "customers", field: "notes", key: "id", expr: "notes::text", keyed: true },
  { table: "customers", field: "tags", key: "id", expr: "tags::text", keyed: true },
  { table: "contacts", field: "email", key: "contact_no", expr: "email", keyed: true },
  { table: "contacts", field: "phone", key: "contact_no", expr: "phone", keyed: false },
  { table: "orders", field: "contact_email", key: "id", expr: "contact_email", keyed: true },
];

/**
 * What must stay byte-equal, per table: every untransformed column, plus the
 * parts of transformed values a transformer must keep (the other keys of the
 * json, the array's length, the type at the path).
 */
export const UNTRANSFORMED: Record<string, string> = {
  customers: `select id, segment, created_at, notes - 'email' as notes_rest,
                     jsonb_typeof(notes -> 'email') as email_type, cardinality(tags) as tag_count,
                     email is null as no_email, full_name is null as no_name, phone is null as no_phone
              from customers`,
  contacts: "select contact_no, name, origin, phone is null as no_phone from contacts",
  orders: "select id, customer_id, amount, placed_at, contact_email is null as no_contact from orders",
};

/** Count and md5 of the rows of a query, ordered by their text. */
export async function queryDigest(sql: postgres.Sql, query: string): Promise<{ rows: number; md5: string }> {
  const [row] = await sql.unsafe<{ rows: number; md5: string }[]>(
    `select count(*)::int as rows, md5(string_agg(r::text, E'\\n' order by r::text)) as md5 from (${query}) r`,
  );
  return row!;
}

/** `key → value` (text, null kept) of a transformed field. */
export async function fieldValues(
  sql: postgres.Sql,
  f: Pick<TransformedField, "table" | "key" | "expr">,
): Promise<Map<string, string | null>> {
  const rows = await sql.unsafe<{ k: string; v: string | null }[]>(
    `select ${f.key}::text as k, (${f.expr})::text as v from ${f.table}`,
  );
  return new Map(rows.map((r) => [r.k, r.v]));
}

/** How the values of one field compare between two databases, row by row. */
export interface FieldComparison {
  /** Rows with a non-null value on the left. */
  nonNull: number;
  /** Of those, rows whose right value differs (or is missing). */
  differing: number;
  /** Rows whose value is null on one side only. */
  nullMismatch: number;
  /** `differing / nonNull` (1 when there is no value). */
  ratio: number;
}

/** Compares a field between two databases, pairing rows by `f.key`. */
export async function compareField(
  left: postgres.Sql,
  right: postgres.Sql,
  f: TransformedField,
): Promise<FieldComparison> {
  const [a, b] = await Promise.all([fieldValues(left, f), fieldValues(right, f)]);
  let nonNull = 0;
  let differing = 0;
  let nullMismatch = 0;
  for (const [k, v] of a) {
    const w = b.get(k);
    if ((v === null) !== (w === null || w === undefined)) nullMismatch++;
    if (v === null) continue;
    nonNull++;
    if (w !== v) differing++;
  }
  return { nonNull, differing, nullMismatch, ratio: nonNull === 0 ? 1 : differing / nonNull };
}

/** The text of `pg_dump` (data and schema) of a database. */
export async function pgDump(url: string): Promise<string> {
  const { stdout } = await run("pg_dump", ["--no-owner", "--no-privileges", url], {
    maxBuffer: 512 * 1024 * 1024,
    encoding: "utf8",
  });
  return stdout;
}

/** How many times each canary occurs in `text`. */
export function canaryCounts(text: string): Record<keyof typeof CANARIES, number> {
  const out = {} as Record<keyof typeof CANARIES, number>;
  for (const [name, value] of Object.entries(CANARIES) as [keyof typeof CANARIES, string][]) {
    let n = 0;
    for (let at = text.indexOf(value); at >= 0; at = text.indexOf(value, at + 1)) n++;
    out[name] = n;
  }
  return out;
}

/** Zero occurrences of every canary, to compare {@link canaryCounts} with. */
export const NO_CANARY: Record<keyof typeof CANARIES, number> = Object.fromEntries(
  Object.keys(CANARIES).map((k) => [k, 0]),
) as Record<keyof typeof CANARIES, number>;

/**
 * Stops the environment's agent (SIGTERM) and starts it again with its stored
 * credential and `DRAY_AGENT_TRANSFORM_KEY=key`, then waits until it runs and
 * its environment is healthy. The process replaces `environment.agent`, so
 * the stack's close() stops it.
 */
export async function restartAgentWithKey(
  stack: DrayStack,
  environment: StackEnvironment,
  key: string,
): Promise<void> {
  await environment.agent.stop("SIGTERM");
  environment.agent = startAgentProcess({
    DRAY_CONTROL_PLANE_URL: stack.cp.grpcUrl,
    DRAY_AGENT_DATABASE_URL: environment.db.url,
    DRAY_AGENT_STATE_DIR: environment.stateDir,
    DRAY_AGENT_NAME: `agent-${environment.name}`,
    DRAY_AGENT_TRANSFORM_KEY: key,
  });
  await environment.agent.waitFor(/"to":"running"[^\n]*"msg":"agent state"/, 20_000);
  await eventually(async () => {
    const r = await stack.api.get(`/api/v1/environments/${environment.id}`);
    return r.body.health === "healthy" && r.body.agent.connected ? true : undefined;
  }, 20_000);
}
