-- Rows of the source environment only: 1,000 customers with 5 orders each.
insert into customers (id, name, email)
select i, 'Customer ' || i, 'customer' || i || '@example.com'
from generate_series(1, 1000) as i;

insert into orders (id, customer_id, total)
select i, 1 + (i - 1) / 5, round((i % 97) * 3.5 + 10, 2)
from generate_series(1, 5000) as i;
