/**
 * Generated "real" schemas for the pg_dump | pg_restore comparison (issue 10):
 *
 * - `small`: a rental-shop schema of 11 tables and 15,607 rows: foreign keys
 *   (one composite primary key, one self-reference), serial ids, a table
 *   partitioned by month whose foreign keys are declared on each partition,
 *   a BEFORE UPDATE trigger that sets `last_update` on most tables, and text,
 *   numeric, timestamp, jsonb and array columns.
 * - `large`: three tables, 1.5M rows (customers → orders → order_lines), the
 *   same column types, serial ids and foreign keys; no partitions, no triggers.
 *
 * `partitions: false` makes `payment` a plain table (its foreign keys on the
 * table itself); `triggers: false` leaves the trigger out. Rows are the same.
 * Everything is generated in SQL with generate_series, deterministically.
 */
import type postgres from "postgres";

export type Shape = "small" | "large";

export interface ShapeOptions {
  /** A partitioned `payment` (small shape); false: a plain table. */
  partitions: boolean;
  /** The `last_updated` BEFORE UPDATE trigger (small shape). */
  triggers: boolean;
}

/** One table of a shape: the entity Dray copies (partitions are copied through their parent). */
export interface ShapeTable {
  /** `public.name`, as a pipeline names it. */
  entity: string;
  name: string;
  rows: number;
}

export interface ShapeDefinition {
  shape: Shape;
  /** Tables in load order (parents first). */
  tables: ShapeTable[];
  /** Statements creating the schema (tables, keys, indexes, partitions, triggers), without rows. */
  schema: string[];
  /** Statements inserting the rows. */
  data: string[];
  /** A short description for the report. */
  describe: string;
}

const table = (name: string, rows: number): ShapeTable => ({ entity: `public.${name}`, name, rows });

/** Months of the payment partitions (payment_date spreads over them). */
const PAYMENT_MONTHS = ["2022-01", "2022-02", "2022-03", "2022-04", "2022-05", "2022-06"];

const nextMonth = (month: string) => {
  const [y, m] = month.split("-").map(Number) as [number, number];
  return m === 12 ? `${y + 1}-01` : `${y}-${String(m + 1).padStart(2, "0")}`;
};

function smallShape(o: ShapeOptions): ShapeDefinition {
  const tables = [
    table("country", 109),
    table("city", 600),
    table("address", 603),
    table("language", 6),
    table("film", 1000),
    table("actor", 200),
    table("film_actor", 5400),
    table("staff", 20),
    table("customer", 599),
    table("rental", 4000),
    table("payment", 3070),
  ];
  const n = Object.fromEntries(tables.map((t) => [t.name, t.rows])) as Record<string, number>;
  const lastUpdate = "last_update timestamp not null default now()";
  const paymentFks = (relation: string) => [
    `alter table ${relation} add foreign key (customer_id) references customer (customer_id)`,
    `alter table ${relation} add foreign key (staff_id) references staff (staff_id)`,
    `alter table ${relation} add foreign key (rental_id) references rental (rental_id)`,
  ];
  const payment = o.partitions
    ? [
        `create table payment (
           payment_id serial not null,
           customer_id int not null,
           staff_id int not null,
           rental_id int not null,
           amount numeric(5,2) not null,
           payment_date timestamptz not null,
           primary key (payment_date, payment_id)
         ) partition by range (payment_date)`,
        ...PAYMENT_MONTHS.flatMap((month) => {
          const part = `payment_p${month.replace("-", "_")}`;
          return [
            `create table ${part} partition of payment for values from ('${month}-01 00:00:00+00') to ('${nextMonth(month)}-01 00:00:00+00')`,
            ...paymentFks(part),
            `create index ${part}_customer_id_idx on ${part} (customer_id)`,
          ];
        }),
      ]
    : [
        `create table payment (
           payment_id serial not null,
           customer_id int not null,
           staff_id int not null,
           rental_id int not null,
           amount numeric(5,2) not null,
           payment_date timestamptz not null,
           primary key (payment_date, payment_id)
         )`,
        ...paymentFks("payment"),
        "create index payment_customer_id_idx on payment (customer_id)",
      ];
  const withTrigger = [
    "country",
    "city",
    "address",
    "language",
    "film",
    "actor",
    "film_actor",
    "staff",
    "customer",
    "rental",
  ];
  const schema = [
    `create table country (country_id serial primary key, country text not null, ${lastUpdate})`,
    `create table city (city_id serial primary key, city text not null,
       country_id int not null references country (country_id), ${lastUpdate})`,
    "create index city_country_id_idx on city (country_id)",
    `create table address (address_id serial primary key, address text not null, address2 text,
       district text not null, city_id int not null references city (city_id), postal_code text,
       phone text not null, ${lastUpdate})`,
    "create index address_city_id_idx on address (city_id)",
    `create table language (language_id serial primary key, name char(20) not null, ${lastUpdate})`,
    `create table film (film_id serial primary key, title text not null, description text, release_year int,
       language_id int not null references language (language_id),
       original_language_id int references language (language_id),
       rental_duration smallint not null default 3, rental_rate numeric(4,2) not null default 4.99,
       length smallint, replacement_cost numeric(5,2) not null default 19.99,
       special_features text[], metadata jsonb, ${lastUpdate})`,
    "create index film_title_idx on film (title)",
    `create table actor (actor_id serial primary key, first_name text not null, last_name text not null, ${lastUpdate})`,
    "create index actor_last_name_idx on actor (last_name)",
    `create table film_actor (actor_id int not null references actor (actor_id),
       film_id int not null references film (film_id), ${lastUpdate}, primary key (actor_id, film_id))`,
    "create index film_actor_film_id_idx on film_actor (film_id)",
    `create table staff (staff_id serial primary key, first_name text not null, last_name text not null,
       address_id int not null references address (address_id), email text,
       manager_id int references staff (staff_id), active boolean not null default true,
       username text not null unique, ${lastUpdate})`,
    `create table customer (customer_id serial primary key, first_name text not null, last_name text not null,
       email text, address_id int not null references address (address_id), activebool boolean not null default true,
       create_date date not null default current_date, preferences jsonb, ${lastUpdate})`,
    "create index customer_address_id_idx on customer (address_id)",
    `create table rental (rental_id serial primary key, rental_date timestamptz not null,
       film_id int not null references film (film_id), customer_id int not null references customer (customer_id),
       return_date timestamptz, staff_id int not null references staff (staff_id), ${lastUpdate})`,
    "create index rental_customer_id_idx on rental (customer_id)",
    ...payment,
    ...(o.triggers
      ? [
          `create function last_updated() returns trigger language plpgsql as $$
           begin new.last_update := current_timestamp; return new; end $$`,
          ...withTrigger.map(
            (t) =>
              `create trigger last_updated before update on ${t} for each row execute function last_updated()`,
          ),
        ]
      : []),
  ];
  const stamp = (g: string) => `timestamp '2022-02-15 09:34:00' + ${g} * interval '7 seconds'`;
  const data = [
    `insert into country (country, last_update)
     select 'Country ' || g || ' ' || (array['Nord','Sud','Est','Ouest','Centre'])[1 + g % 5], ${stamp("g")}
     from generate_series(1, ${n.country}) g`,
    `insert into city (city, country_id, last_update)
     select 'City ' || g, 1 + (g * 7) % ${n.country}, ${stamp("g")} from generate_series(1, ${n.city}) g`,
    `insert into address (address, address2, district, city_id, postal_code, phone, last_update)
     select g || ' ' || (array['Main','High','Station','Church','Mill'])[1 + g % 5] || ' Street',
            case when g % 3 = 0 then 'Flat ' || g % 40 end,
            'District ' || g % 50, 1 + (g * 13) % ${n.city},
            case when g % 10 = 0 then null else lpad((g * 379 % 100000)::text, 5, '0') end,
            '+1 555 ' || lpad((g * 7919 % 10000000)::text, 7, '0'), ${stamp("g")}
     from generate_series(1, ${n.address}) g`,
    `insert into language (name, last_update)
     select (array['English','Italian','Japanese','Mandarin','French','German'])[g], ${stamp("g")}
     from generate_series(1, ${n.language}) g`,
    `insert into film (title, description, release_year, language_id, original_language_id, rental_duration,
                       rental_rate, length, replacement_cost, special_features, metadata, last_update)
     select 'FILM ' || upper(md5(g::text)) ,
            'A ' || (array['Epic','Thoughtful','Astounding','Fateful','Boring'])[1 + g % 5] || ' story of a '
              || (array['dentist','robot','crocodile','monk','database administrator'])[1 + g % 5],
            2000 + g % 24, 1 + g % ${n.language},
            case when g % 4 = 0 then 1 + (g / 4) % ${n.language} end,
            (3 + g % 5)::smallint, (0.99 + (g % 3) * 2)::numeric(4,2), (46 + g % 140)::smallint,
            (9.99 + (g % 21))::numeric(5,2),
            case when g % 5 = 0 then null
                 when g % 4 = 0 then array['Trailers']
                 when g % 4 = 1 then array['Trailers', 'Commentaries']
                 when g % 4 = 2 then array['Deleted Scenes']
                 else array['Behind the Scenes', 'Trailers', 'Commentaries'] end,
            jsonb_build_object('rating', (array['G','PG','PG-13','R','NC-17'])[1 + g % 5],
                               'votes', g * 17 % 5000, 'score', round((g % 97) / 9.7, 2),
                               'tags', jsonb_build_array('tag' || g % 11, 'tag' || g % 7)),
            ${stamp("g")}
     from generate_series(1, ${n.film}) g`,
    `insert into actor (first_name, last_name, last_update)
     select (array['PENELOPE','NICK','ED','JENNIFER','JOHNNY','BETTE','GRACE','MATTHEW'])[1 + g % 8],
            (array['GUINESS','WAHLBERG','CHASE','DAVIS','LOLLOBRIGIDA','NICHOLSON','MOSTEL'])[1 + g % 7] || g,
            ${stamp("g")}
     from generate_series(1, ${n.actor}) g`,
    `insert into film_actor (actor_id, film_id, last_update)
     select 1 + g % ${n.actor}, 1 + ((g / ${n.actor}) * 37 + (g % ${n.actor}) * 5) % ${n.film}, ${stamp("g")}
     from generate_series(0, ${n.film_actor! - 1}) g`,
    `insert into staff (first_name, last_name, address_id, email, manager_id, active, username, last_update)
     select 'Staff' || g, 'Member' || g, 1 + g * 29 % ${n.address}, 'staff' || g || '@example.com',
            case when g = 1 then null else 1 + (g - 2) / 4 end, g % 7 <> 0, 'user' || g, ${stamp("g")}
     from generate_series(1, ${n.staff}) g`,
    `insert into customer (first_name, last_name, email, address_id, activebool, create_date, preferences, last_update)
     select (array['MARY','PATRICIA','LINDA','BARBARA','ELIZABETH','JENNIFER','MARIA'])[1 + g % 7],
            (array['SMITH','JOHNSON','WILLIAMS','JONES','BROWN','DAVIS'])[1 + g % 6] || g,
            case when g % 11 = 0 then null else 'customer' || g || '@example.org' end,
            1 + g * 7 % ${n.address}, g % 13 <> 0, date '2020-02-14' + g % 700,
            case when g % 3 = 0 then null
                 else jsonb_build_object('newsletter', g % 2 = 0, 'language', (array['en','fr','de'])[1 + g % 3],
                                         'genres', jsonb_build_array('Drama', 'Comedy')) end,
            ${stamp("g")}
     from generate_series(1, ${n.customer}) g`,
    `insert into rental (rental_date, film_id, customer_id, return_date, staff_id, last_update)
     select timestamptz '2022-01-01 00:00:00+00' + g * interval '53 minutes', 1 + g * 31 % ${n.film},
            1 + g * 17 % ${n.customer},
            case when g % 20 = 0 then null else timestamptz '2022-01-01 00:00:00+00' + g * interval '53 minutes' + (1 + g % 9) * interval '1 day' end,
            1 + g % ${n.staff}, ${stamp("g")}
     from generate_series(1, ${n.rental}) g`,
    `insert into payment (customer_id, staff_id, rental_id, amount, payment_date)
     select 1 + g * 17 % ${n.customer}, 1 + g % ${n.staff}, 1 + g * 3 % ${n.rental},
            (0.99 + (g % 10))::numeric(5,2),
            timestamptz '2022-01-01 00:00:00+00' + g * interval '${Math.floor((181 * 86400) / (n.payment! + 1))} seconds'
     from generate_series(1, ${n.payment}) g`,
  ];
  return {
    shape: "small",
    tables,
    schema,
    data,
    describe: `11 tables, ${tables.reduce((s, t) => s + t.rows, 0).toLocaleString("en")} rows; payment ${
      o.partitions
        ? `partitioned by month (${PAYMENT_MONTHS.length} partitions, FKs on each partition)`
        : "a plain table"
    }; ${o.triggers ? `BEFORE UPDATE last_update trigger on ${withTrigger.length} tables` : "no triggers"}`,
  };
}

function largeShape(): ShapeDefinition {
  const tables = [table("customers", 100_000), table("orders", 400_000), table("order_lines", 1_000_000)];
  const [customers, orders, lines] = tables.map((t) => t.rows) as [number, number, number];
  const schema = [
    `create table customers (id bigserial primary key, name text not null, email text not null,
       country_code char(2) not null, created_at timestamptz not null, balance numeric(12,2) not null,
       tags text[], profile jsonb)`,
    `create table orders (id bigserial primary key, customer_id bigint not null references customers (id),
       ordered_at timestamptz not null, status text not null, total numeric(12,2) not null, shipping jsonb)`,
    "create index orders_customer_id_idx on orders (customer_id)",
    `create table order_lines (id bigserial primary key, order_id bigint not null references orders (id),
       line_no int not null, sku text not null, quantity int not null, unit_price numeric(10,2) not null,
       discount numeric(4,3), attributes jsonb)`,
    "create index order_lines_order_id_idx on order_lines (order_id)",
  ];
  const data = [
    `insert into customers (name, email, country_code, created_at, balance, tags, profile)
     select 'Customer ' || g || ' ' || (array['Ltd','GmbH','Inc','SARL','BV'])[1 + g % 5],
            'customer' || g || '@example' || g % 89 || '.com',
            (array['GB','FR','DE','US','NL','ES','IT'])[1 + g % 7],
            timestamptz '2016-01-01 00:00:00+00' + g * interval '13 minutes',
            ((g * 7919) % 1000000) / 100.0,
            case when g % 4 = 0 then null else array['vip' || g % 3, 'segment' || g % 11] end,
            case when g % 5 = 0 then null
                 else jsonb_build_object('plan', (array['free','pro','team'])[1 + g % 3], 'seats', g % 50,
                                         'since', 2016 + g % 8) end
     from generate_series(1, ${customers}) g`,
    `insert into orders (customer_id, ordered_at, status, total, shipping)
     select 1 + (g::int8 * 7919) % ${customers}, timestamptz '2019-01-01 00:00:00+00' + g * interval '61 seconds',
            (array['new','paid','shipped','delivered','cancelled'])[1 + g % 5], ((g * 31) % 100000) / 100.0,
            case when g % 3 = 0 then null
                 else jsonb_build_object('carrier', (array['ups','dhl','post'])[1 + g % 3], 'zip', lpad((g % 99999)::text, 5, '0')) end
     from generate_series(1, ${orders}) g`,
    `insert into order_lines (order_id, line_no, sku, quantity, unit_price, discount, attributes)
     select 1 + ((g - 1)::int8 * ${orders}) / ${lines}, 1 + (g - 1) % 3, 'SKU-' || lpad((g * 37 % 100000)::text, 6, '0'),
            1 + g % 9, ((g * 13) % 50000) / 100.0,
            case when g % 4 = 0 then ((g % 30) / 100.0)::numeric(4,3) end,
            case when g % 6 = 0 then jsonb_build_object('gift', true, 'note', 'line ' || g) end
     from generate_series(1, ${lines}) g`,
  ];
  return {
    shape: "large",
    tables,
    schema,
    data,
    describe: `3 tables, ${(customers + orders + lines).toLocaleString("en")} rows (customers → orders → order_lines; bigserial ids, FKs, numeric, timestamptz, text[], jsonb; no partitions, no triggers)`,
  };
}

export function shapeDefinition(shape: Shape, options: ShapeOptions): ShapeDefinition {
  return shape === "small" ? smallShape(options) : largeShape();
}

/** Creates the schema and rows of `def` in an empty database, then VACUUM (FREEZE, ANALYZE). */
export async function loadShape(sql: postgres.Sql, def: ShapeDefinition): Promise<void> {
  for (const statement of def.schema) await sql.unsafe(statement);
  for (const statement of def.data) await sql.unsafe(statement);
  await sql.unsafe("vacuum (freeze, analyze)");
}

/** Row count and md5 of the rows' text in order, per table (partitioned tables through their parent). */
export interface TableFingerprint {
  rows: number;
  md5: string;
}

/** Fingerprints every table of the shape: `count(*)` and md5 of the rows' text, ordered by that text. */
export async function fingerprintShape(
  sql: postgres.Sql,
  def: ShapeDefinition,
): Promise<Record<string, TableFingerprint>> {
  const out: Record<string, TableFingerprint> = {};
  for (const t of def.tables) {
    const [row] = await sql.unsafe<{ n: string; h: string | null }[]>(
      `select count(*)::text as n, md5(coalesce(string_agg(t::text, E'\\n' order by t::text collate "C"), '')) as h
       from ${t.entity} t`,
    );
    out[t.name] = { rows: Number(row!.n), md5: row!.h ?? "" };
  }
  return out;
}

/** `last_value, is_called` of every sequence of the public schema, by name. */
export async function sequenceStates(sql: postgres.Sql): Promise<Record<string, string>> {
  const rows = await sql.unsafe<{ name: string; state: string }[]>(
    `select sequencename as name, coalesce(last_value::text, 'null') as state
     from pg_catalog.pg_sequences where schemaname = 'public' order by 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.state]));
}

/** Compares two fingerprints: undefined when equal, else what differs first. */
export function differences(
  def: ShapeDefinition,
  source: Record<string, TableFingerprint>,
  target: Record<string, TableFingerprint>,
): string | undefined {
  const wrong: string[] = [];
  for (const t of def.tables) {
    const a = source[t.name]!;
    const b = target[t.name]!;
    if (a.rows !== b.rows) wrong.push(`${t.name}: ${b.rows} rows in the target, ${a.rows} in the source`);
    else if (a.md5 !== b.md5) wrong.push(`${t.name}: rows differ (md5)`);
  }
  return wrong.length ? wrong.join("; ") : undefined;
}
