/**
 * The generated CRM dataset: `accounts` and `contacts` (12 columns of mixed
 * types, a primary key, a foreign key to accounts and an index on it),
 * generated in SQL with generate_series.
 */
import type postgres from "postgres";

/** Tables in load order (parents first), schema-qualified. */
export const TABLES = ["public.accounts", "public.contacts"] as const;

const ACCOUNTS = `create table accounts (
  id bigint not null,
  name text not null,
  industry text not null,
  created_at timestamptz not null
)`;

const CONTACTS = `create table contacts (
  id bigint not null,
  account_id bigint not null,
  first_name text not null,
  last_name text not null,
  email text not null,
  phone text,
  age int,
  score int not null,
  is_active boolean not null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  notes text
)`;

const CONSTRAINTS = [
  "alter table accounts add primary key (id)",
  "alter table contacts add primary key (id)",
  "alter table contacts add constraint contacts_account_id_fkey foreign key (account_id) references accounts (id)",
  "create index contacts_account_id_idx on contacts (account_id)",
];

/** Creates the empty tables with every constraint (the target). */
export async function createSchema(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`${ACCOUNTS}; ${CONTACTS}; ${CONSTRAINTS.join("; ")}`);
}

/**
 * Creates and fills the source: tables first, rows with generate_series, then
 * the constraints (faster than indexing row by row), then VACUUM (FREEZE, ANALYZE)
 * so that no measured read pays for setting hint bits.
 */
export async function generateSource(sql: postgres.Sql, contacts: number, accounts: number): Promise<void> {
  await sql.unsafe(`${ACCOUNTS}; ${CONTACTS}`);
  await sql.unsafe(`
    insert into accounts (id, name, industry, created_at)
    select g,
           'Account ' || g || ' ' || (array['Ltd','GmbH','Inc','SARL','BV','Oy'])[1 + g % 6],
           (array['Retail','Finance','Health','Energy','Software','Logistics','Media'])[1 + g % 7],
           timestamptz '2015-01-01 00:00:00+00' + g * interval '17 minutes'
    from generate_series(1, ${accounts}) g`);
  await sql.unsafe(`
    insert into contacts (id, account_id, first_name, last_name, email, phone, age, score, is_active,
                          created_at, updated_at, notes)
    select g,
           1 + (g::int8 * 7919) % ${accounts},
           (array['Anna','Ben','Chloé','David','Emma','Farid','Greta','Hugo','Ines','Jonas','Kofi','Lena'])[1 + g % 12],
           (array['Smith','Müller','García','Rossi','Dubois','Nowak','Jensen','Silva','Kim','Okafor'])[1 + (g / 12) % 10],
           'contact' || g || '@example' || (g % 97) || '.com',
           case when g % 4 = 0 then null else '+44 20 ' || lpad((g % 10000000)::text, 7, '0') end,
           case when g % 10 = 0 then null else 18 + g % 60 end,
           (g::int8 * 31) % 1000,
           g % 3 <> 0,
           timestamptz '2018-01-01 00:00:00+00' + g * interval '37 seconds',
           timestamptz '2023-06-01 00:00:00+00' + (g % 100000) * interval '1 minute',
           case when g % 2 = 0 then null
                else 'Met at ' || (array['a conference','a webinar','the office','a trade fair'])[1 + g % 4]
                     || '; follow up ' || repeat('soon, ', (g % 8)::int) || 'ref #' || md5(g::text)
           end
    from generate_series(1, ${contacts}) g`);
  await sql.unsafe(CONSTRAINTS.join("; "));
  await sql.unsafe("vacuum (freeze, analyze) accounts, contacts");
}

/** Empties the target's tables. */
export async function truncateTarget(sql: postgres.Sql): Promise<void> {
  await sql.unsafe("truncate table contacts, accounts");
}

/** Row count and an order-independent hash of every row's text, per table. */
export async function fingerprint(
  sql: postgres.Sql,
): Promise<Record<string, { rows: number; hash: string }>> {
  const out: Record<string, { rows: number; hash: string }> = {};
  for (const table of TABLES) {
    const [row] = await sql.unsafe<{ n: string; h: string | null }[]>(
      `select count(*)::text as n, coalesce(sum(hashtext(t::text)::int8), 0)::text as h from ${table} t`,
    );
    out[table] = { rows: Number(row!.n), hash: row!.h ?? "0" };
  }
  return out;
}

/** Size on disk of the source tables (heap + indexes), for the report. */
export async function tableSizes(sql: postgres.Sql): Promise<string> {
  const rows = await sql.unsafe<{ t: string; heap: string; total: string }[]>(
    `select c.relname as t, pg_size_pretty(pg_table_size(c.oid)) as heap,
            pg_size_pretty(pg_total_relation_size(c.oid)) as total
     from pg_class c where c.relname in ('accounts', 'contacts') and c.relkind = 'r' order by c.relname`,
  );
  return rows.map((r) => `${r.t} ${r.heap} heap, ${r.total} with indexes`).join("; ");
}
