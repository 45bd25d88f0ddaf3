/**
 * The fault suite's dataset: three tables linked by foreign keys
 * (customers ← orders ← order_lines), 300,000 rows in all, generated in SQL
 * so every test file builds its own source in a couple of seconds.
 */

/** Tables in dependency order. */
export const FAULT_TABLES = ["customers", "orders", "order_lines"] as const;

/** The same tables as pipeline entities. */
export const FAULT_ENTITIES = FAULT_TABLES.map((t) => `public.${t}`);

/** Rows per table. */
export const FAULT_SIZE = { customers: 30_000, orders: 90_000, order_lines: 180_000 } as const;

/** Rows in all (300,000). */
export const FAULT_TOTAL = FAULT_SIZE.customers + FAULT_SIZE.orders + FAULT_SIZE.order_lines;

/** DDL of the three tables (source and target alike). */
export const FAULT_SCHEMA = `
  create table customers (
    id bigint primary key,
    email text not null,
    full_name text,
    country char(2) not null,
    created_at timestamptz not null
  );
  create table orders (
    id bigint primary key,
    customer_id bigint not null references customers(id),
    status text not null,
    total numeric(12,2) not null,
    placed_at timestamptz not null
  );
  create table order_lines (
    id bigint primary key,
    order_id bigint not null references orders(id),
    sku text not null,
    quantity int not null,
    unit_price numeric(10,2) not null,
    note text
  );
`;

/** Inserts the rows (deterministic: the same data in every run). */
export const FAULT_DATA = `
  insert into customers
    select g, 'customer' || g || '@example.test', 'Customer ' || g,
      (array['DE','FR','US','JP','BR'])[1 + g % 5],
      timestamptz '2024-01-01 00:00:00+00' + make_interval(secs => g * 61)
    from generate_series(1, ${FAULT_SIZE.customers}) g;
  insert into orders
    select g, 1 + (g * 7) % ${FAULT_SIZE.customers},
      (array['new','paid','shipped','cancelled'])[1 + g % 4],
      round(((g * 37) % 100000) / 100.0, 2),
      timestamptz '2024-06-01 00:00:00+00' + make_interval(secs => g * 17)
    from generate_series(1, ${FAULT_SIZE.orders}) g;
  insert into order_lines
    select g, 1 + (g * 13) % ${FAULT_SIZE.orders}, 'SKU-' || (g % 997),
      1 + g % 9, round(((g * 11) % 50000) / 100.0, 2),
      case when g % 10 = 0 then 'gift wrap ' || g end
    from generate_series(1, ${FAULT_SIZE.order_lines}) g;
  analyze customers; analyze orders; analyze order_lines;
`;

/**
 * For the target: every statement that writes one of the tables sleeps
 * `seconds` (a statement-level trigger), so a default-sized run lasts long
 * enough for a fault to land in its middle, whatever the machine's speed.
 */
export function slowWrites(seconds: number): string {
  return `
    create function fault_slow_write() returns trigger language plpgsql as $$
    begin
      perform pg_sleep(${seconds});
      return null;
    end $$;
    ${FAULT_TABLES.map(
      (t) =>
        // Loads run with triggers off (session_replication_role = replica); ALWAYS makes this one fire anyway.
        `create trigger fault_slow_write after insert or update on ${t} for each statement execute function fault_slow_write();` +
        ` alter table ${t} enable always trigger fault_slow_write;`,
    ).join("\n    ")}
  `;
}
