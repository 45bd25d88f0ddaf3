-- The demo schema of both environments (mounted into each database's init folder): Dray copies
-- rows between existing tables, so the target has the same tables as the source.
create table customers (
  id bigint primary key,
  name text not null,
  email text not null unique,
  created_at timestamptz not null default now()
);

create table orders (
  id bigint primary key,
  customer_id bigint not null references customers (id),
  total numeric(12, 2) not null,
  placed_at timestamptz not null default now()
);
