/**
 * The data-quality end-to-end test's dataset (test/quality-rules-pipeline.test.ts):
 * customers and orders with rows planted to fail each rule kind (not_null,
 * matches, range, max_length, one_of), NULLs that every rule but not_null
 * lets pass, values right at a bound that pass, a canary in a failing email,
 * and a `readings` table whose contiguous key range fails, for batches where
 * every row fails. The same rules are written in SQL, so the expected outcome
 * comes from the source database, not from Dray.
 */
import type postgres from "postgres";

/** A failing email that must never leave the source, in any form Dray reports. */
export const DQ_CANARY = "Canary.DQ.Q7x9 at example.org";

/** Raw values of failing fields that no report may quote. */
export const FAILING_VALUES = ["bad email ", "Llanfairpwllgwyngyll", DQ_CANARY] as const;

/** The email pattern, the same text for RE2 (the rule) and PostgreSQL's `~` (the check). */
export const EMAIL_PATTERN = "^[a-z0-9.]+@[a-z0-9.]+$";

/** Rows of each table the source gets. */
export const DQ_SIZE = { customers: 200, orders: 300, readings: 40 } as const;

/** The schema, the same on source and target. */
export const DQ_SCHEMA = `
create table customers (
  id bigint primary key,
  email text,
  age integer,
  country text,
  city text
);
create table orders (
  id bigint primary key,
  customer_id bigint not null references customers (id),
  amount numeric(10, 2),
  status text
);
create table readings (id integer primary key, value integer);
`;

/** The schema of a transform target: customers only. */
export const DQ_CUSTOMERS_SCHEMA = `
create table customers (
  id bigint primary key,
  email text,
  age integer,
  country text,
  city text
);
`;

/** SQL of the customers that pass every customer rule (NULL passes all but email's not_null). */
export const CUSTOMERS_PASS = `email is not null and email ~ '${EMAIL_PATTERN}'
  and (age is null or age between 0 and 120)
  and (city is null or char_length(city) <= 12)
  and (country is null or country in ('GB', 'FR', 'DE'))`;

/** SQL of the field of the first customer rule a row fails (null when it passes), in rule order. */
export const CUSTOMERS_FAILED_FIELD = `case
  when email is null then 'email'
  when email !~ '${EMAIL_PATTERN}' then 'email'
  when age not between 0 and 120 then 'age'
  when char_length(city) > 12 then 'city'
  when country not in ('GB', 'FR', 'DE') then 'country' end`;

/** SQL of the field of the first order rule a row fails (null when it passes), in rule order. */
export const ORDERS_FAILED_FIELD = `case
  when amount < 0 then 'amount'
  when status not in ('open', 'paid', 'shipped') then 'status' end`;

/** The readings whose value fails `range {min: 0, max: 100}`: a contiguous key range and one more. */
export const READINGS_FAILING = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 33];

/** The source's rows, generated in SQL. Orders reference passing customers only. */
export const DQ_DATA = `
insert into customers
select i,
       case when i = 1 then '${DQ_CANARY}'
            when i % 23 = 0 then null
            when i % 29 = 0 then 'bad email ' || i
            when i % 31 = 0 then 'User' || i || '@Example.com'
            else 'user' || i || '@example.com' end,
       case when i % 37 = 0 then 150 when i % 41 = 0 then -3 when i % 7 = 0 then null
            when i % 53 = 0 then 120 else 18 + i % 60 end,
       case when i % 47 = 0 then 'XX' when i % 9 = 0 then null when i % 19 = 0 then 'gb'
            else (array['GB', 'FR', 'DE'])[1 + i % 3] end,
       case when i % 43 = 0 then 'Llanfairpwllgwyngyll' when i % 11 = 0 then null
            when i % 13 = 0 then 'Köln-Süd-Ost' else 'City' || (i % 50) end
from generate_series(1, ${DQ_SIZE.customers}) i;

with ok as (select id, row_number() over (order by id) - 1 as n from customers where ${CUSTOMERS_PASS})
insert into orders
select i,
       (select id from ok where n = i % (select count(*) from ok)),
       case when i % 19 = 0 then -5.00 when i % 6 = 0 then null else i * 1.25 end,
       case when i % 17 = 0 then 'lost' when i % 5 = 0 then null
            else (array['open', 'paid', 'shipped'])[1 + i % 3] end
from generate_series(1, ${DQ_SIZE.orders}) i;

insert into readings
select i, case when i in (${READINGS_FAILING.join(", ")}) then 500 + i when i = 40 then 100
               when i % 4 = 0 then null else i end
from generate_series(1, ${DQ_SIZE.readings}) i;
analyze;
`;

/** The rules of the main copy pipeline, in the order the expected-field SQL follows. */
export const DQ_RULES = [
  { entity: "public.customers", field: "email", rule: "not_null", options: {} },
  { entity: "public.customers", field: "email", rule: "matches", options: { pattern: EMAIL_PATTERN } },
  { entity: "public.customers", field: "age", rule: "range", options: { min: 0, max: 120 } },
  { entity: "public.customers", field: "city", rule: "max_length", options: { length: 12 } },
  { entity: "public.customers", field: "country", rule: "one_of", options: { values: ["GB", "FR", "DE"] } },
  { entity: "public.orders", field: "amount", rule: "range", options: { min: 0 } },
  {
    entity: "public.orders",
    field: "status",
    rule: "one_of",
    options: { values: ["open", "paid", "shipped"] },
  },
];

/** Every row of `table` with `failedField` (SQL) as `field`: the ids that pass and the failures by id. */
export async function expectedOutcome(
  sql: postgres.Sql,
  table: string,
  failedField: string,
): Promise<{ passing: string[]; failing: { key: string; field: string }[] }> {
  const rows = await sql.unsafe<{ id: string; field: string | null }[]>(
    `select id::text as id, ${failedField} as field from ${table} t order by t.id`,
  );
  return {
    passing: rows.filter((r) => r.field === null).map((r) => r.id),
    failing: rows.filter((r) => r.field !== null).map((r) => ({ key: r.id, field: r.field! })),
  };
}

/** The ids of `table`, as text, in numeric order. */
export async function idsOf(sql: postgres.Sql, table: string): Promise<string[]> {
  const rows = await sql.unsafe<{ id: string }[]>(`select id::text as id from ${table} t order by t.id`);
  return rows.map((r) => r.id);
}

/** Text ids in numeric order. */
export function byNumber(ids: Iterable<string>): string[] {
  return [...ids].sort((a, b) => Number(a) - Number(b));
}
