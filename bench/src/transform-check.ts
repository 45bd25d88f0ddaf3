/**
 * `--transform`: the transformations the bench applies to `public.contacts`,
 * the check of the transformed target against the source, and each
 * transformer's speed in this process (values per CPU-second).
 */
import { randomBytes } from "node:crypto";
import { compileTransformer } from "../../agent/src/transform/index.js";
import type { TestDatabase } from "../../test/support/databases.js";
import { perCpuSecond } from "./per-cpu-second.js";

/** One field transformation, as the pipeline API takes it. */
export interface BenchTransformation {
  entity: string;
  field: string;
  transformer: string;
  options: Record<string, unknown>;
}

/** The three transformed fields of contacts: a fake email, a regexp on the phone, a hash of the last name. */
export const TRANSFORMATIONS: readonly BenchTransformation[] = [
  { entity: "public.contacts", field: "email", transformer: "email", options: {} },
  {
    entity: "public.contacts",
    field: "phone",
    transformer: "regexp_replace",
    options: { pattern: "\\d{4}$", replacement: "XXXX" },
  },
  { entity: "public.contacts", field: "last_name", transformer: "hash", options: {} },
];

/** The transformed fields, in TRANSFORMATIONS order. */
const FIELDS = TRANSFORMATIONS.map((t) => t.field);

/** Contacts columns no transformation touches: equal in source and target. */
const UNTOUCHED = [
  "id",
  "account_id",
  "first_name",
  "age",
  "score",
  "is_active",
  "created_at",
  "updated_at",
  "notes",
];

/** Share of changed values a transformed field needs (issue 11). */
export const MIN_CHANGED = 0.999;

export interface FieldCheck {
  field: string;
  transformer: string;
  /** Source rows where the field is not NULL. */
  nonNull: number;
  /** Of those, rows whose target value differs. */
  changed: number;
  /** Rows NULL on one side only. */
  nullMismatch: number;
}

export interface TransformCheck {
  /** Rows per table, source and target. */
  counts: Record<string, { source: number; target: number }>;
  /** accounts: every row equal (hash of each row's text). */
  accountsEqual: boolean;
  /** contacts: md5 of the untouched columns, in id order, equal. */
  untouchedEqual: boolean;
  fields: FieldCheck[];
  /** Rows whose id differs at the same position (ids ordered): 0 when both sides hold the same ids. */
  idMismatch: number;
  /** Why the check fails, or undefined. */
  problem: string | undefined;
}

async function count(sql: TestDatabase["sql"], table: string): Promise<number> {
  const [row] = await sql.unsafe<{ n: string }[]>(`select count(*)::text as n from ${table}`);
  return Number(row!.n);
}

async function untouchedMd5(sql: TestDatabase["sql"]): Promise<string> {
  const [row] = await sql.unsafe<{ h: string | null }[]>(
    `select md5(string_agg(md5(row(${UNTOUCHED.join(", ")})::text), '' order by id)) as h from contacts`,
  );
  return row!.h ?? "";
}

async function accountsHash(sql: TestDatabase["sql"]): Promise<string> {
  const [row] = await sql.unsafe<{ h: string | null }[]>(
    "select md5(string_agg(md5(t::text), '' order by id)) as h from accounts t",
  );
  return row!.h ?? "";
}

type FieldRow = { id: string } & Record<string, string | null>;

async function page(sql: TestDatabase["sql"], after: string, limit: number): Promise<FieldRow[]> {
  return sql.unsafe<FieldRow[]>(
    `select id::text as id, ${FIELDS.join(", ")} from contacts c where c.id > $1 order by c.id limit ${limit}`,
    [after],
  );
}

/**
 * Checks the transformed target: row counts equal, accounts and the untouched
 * contacts columns equal, and each transformed field changed in at least
 * {@link MIN_CHANGED} of the source's non-NULL rows (compared row by row, by id).
 */
export async function checkTransformed(source: TestDatabase, target: TestDatabase): Promise<TransformCheck> {
  const counts: TransformCheck["counts"] = {};
  for (const table of ["public.accounts", "public.contacts"])
    counts[table] = { source: await count(source.sql, table), target: await count(target.sql, table) };
  const [a1, a2, u1, u2] = await Promise.all([
    accountsHash(source.sql),
    accountsHash(target.sql),
    untouchedMd5(source.sql),
    untouchedMd5(target.sql),
  ]);
  const fields: FieldCheck[] = TRANSFORMATIONS.map((t) => ({
    field: t.field,
    transformer: t.transformer,
    nonNull: 0,
    changed: 0,
    nullMismatch: 0,
  }));
  let idMismatch = 0;
  let compared = 0;
  let after = "-1";
  for (;;) {
    const [s, d] = await Promise.all([page(source.sql, after, 50_000), page(target.sql, after, 50_000)]);
    if (s.length === 0 && d.length === 0) break;
    const n = Math.max(s.length, d.length);
    for (let i = 0; i < n; i++) {
      const x = s[i];
      const y = d[i];
      if (!x || !y || x.id !== y.id) {
        idMismatch++;
        continue;
      }
      compared++;
      for (const f of fields) {
        const before = x[f.field] ?? null;
        const now = y[f.field] ?? null;
        if ((before === null) !== (now === null)) f.nullMismatch++;
        if (before === null) continue;
        f.nonNull++;
        if (now !== before) f.changed++;
      }
    }
    // Both pages end at the same id unless ids differ, which idMismatch counts.
    const lastS = s.at(-1)?.id;
    const lastD = d.at(-1)?.id;
    after =
      lastS === undefined
        ? lastD!
        : lastD === undefined
          ? lastS
          : BigInt(lastS) > BigInt(lastD)
            ? lastS
            : lastD;
  }
  const problems: string[] = [];
  for (const [table, c] of Object.entries(counts))
    if (c.source !== c.target)
      problems.push(`${table}: ${c.target} rows in the target, ${c.source} in the source`);
  if (a1 !== a2) problems.push("public.accounts: rows differ from the source (md5)");
  if (u1 !== u2)
    problems.push(
      `public.contacts: untouched columns differ from the source (md5 of ${UNTOUCHED.join(", ")})`,
    );
  const sourceContacts = counts["public.contacts"]!.source;
  if (idMismatch === 0 && compared !== sourceContacts)
    problems.push(`public.contacts: compared ${compared} rows by id, the source has ${sourceContacts}`);
  if (idMismatch > 0) problems.push(`public.contacts: ${idMismatch} rows whose id is on one side only`);
  for (const f of fields) {
    if (f.nonNull > 0 && f.changed / f.nonNull < MIN_CHANGED)
      problems.push(`contacts.${f.field}: only ${f.changed} of ${f.nonNull} non-NULL values changed`);
    if (f.nullMismatch > 0)
      problems.push(`contacts.${f.field}: ${f.nullMismatch} rows NULL on one side only`);
  }
  return {
    counts,
    accountsEqual: a1 === a2,
    untouchedEqual: u1 === u2,
    fields,
    idMismatch,
    problem: problems.length ? problems.join("; ") : undefined,
  };
}

export interface TransformerSpeed {
  field: string;
  transformer: string;
  /** Distinct sample values the function ran over (cycled up to `calls`). */
  samples: number;
  calls: number;
  /** Values per CPU-second, in this process, one thread. */
  perCpuSecond: number;
  /** Share of contacts rows where the field is not NULL (what a copy transforms). */
  nonNullShare: number;
}

/**
 * Times each transformation's compiled function (compileTransformer, a random
 * 32-byte key, the column's type) over up to `samples` of the source's
 * non-NULL values, `calls` calls, with process.cpuUsage.
 */
export async function transformerSpeeds(
  source: TestDatabase,
  samples = 200_000,
  calls = 200_000,
): Promise<TransformerSpeed[]> {
  const key = randomBytes(32);
  const out: TransformerSpeed[] = [];
  const [total] = await source.sql.unsafe<{ n: string }[]>("select count(*)::text as n from contacts");
  for (const t of TRANSFORMATIONS) {
    const [type] = await source.sql.unsafe<{ t: string }[]>(
      `select format_type(a.atttypid, a.atttypmod) as t from pg_attribute a
       where a.attrelid = 'public.contacts'::regclass and a.attname = $1 and not a.attisdropped`,
      [t.field],
    );
    const rows = await source.sql.unsafe<{ v: string }[]>(
      `select ${t.field}::text as v from contacts where ${t.field} is not null order by id limit ${samples}`,
    );
    const [nonNull] = await source.sql.unsafe<{ n: string }[]>(
      `select count(*)::text as n from contacts where ${t.field} is not null`,
    );
    const fn = compileTransformer(t.transformer, t.options, key, type!.t);
    const values = rows.map((r) => r.v);
    out.push({
      field: t.field,
      transformer: t.transformer,
      samples: values.length,
      calls,
      perCpuSecond: values.length ? perCpuSecond(fn, values, calls) : 0,
      nonNullShare: Number(nonNull!.n) / Math.max(1, Number(total!.n)),
    });
  }
  return out;
}

/** CPU seconds the transformers need for `contacts` rows, from their measured speeds. */
export function expectedTransformCpu(speeds: TransformerSpeed[], contacts: number): number {
  return speeds.reduce(
    (s, t) => s + (t.perCpuSecond > 0 ? (contacts * t.nonNullShare) / t.perCpuSecond : 0),
    0,
  );
}
