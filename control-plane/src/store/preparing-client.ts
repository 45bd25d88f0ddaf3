import type postgres from "postgres";

type Unsafe = postgres.Sql["unsafe"];

/**
 * The store's postgres.js client, with every statement prepared.
 *
 * drizzle-orm runs its queries with `prepare: false` unless they are named.
 * postgres.js then describes each statement with parameters before it binds
 * them: two round trips to the store for every query. Prepared, a statement is
 * parsed and described once per connection, and each later run of it is one
 * round trip. The control plane's statements are a fixed set (values are always
 * parameters), and postgres.js recycles its connections (`max_lifetime`), so
 * the statements each connection keeps stay few.
 *
 * The wrapper applies to the client and to the clients postgres.js hands to
 * `begin` and `savepoint` callbacks, which drizzle's transactions use.
 */
export function preparingClient<T extends postgres.Sql | postgres.TransactionSql>(sql: T): T {
  return new Proxy(sql, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property === "unsafe") {
        const unsafe = value as Unsafe;
        return ((query: string, params?: unknown[], options?: postgres.UnsafeQueryOptions) =>
          unsafe.call(target, query, params as never, { ...options, prepare: true })) as Unsafe;
      }
      if (property === "begin" || property === "savepoint") {
        const open = value as (...args: unknown[]) => unknown;
        return (...args: unknown[]) =>
          open.apply(
            target,
            args.map((arg) =>
              typeof arg === "function"
                ? (tx: postgres.TransactionSql) =>
                    (arg as (tx: postgres.TransactionSql) => unknown)(preparingClient(tx))
                : arg,
            ),
          );
      }
      return value;
    },
  });
}
