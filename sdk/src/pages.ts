/**
 * Following the API's cursor pages: lists answer a page and a `next` cursor
 * (null on the last page); these helpers fetch page after page.
 */

/** A page of a list answered under `key`, with the cursor of the next page. */
export type CursorPage<K extends string, T> = { [P in K]: T[] } & { next?: string | null };

/**
 * Yields every item of a list, fetching the next page only when the previous
 * one is used up. `fetchPage` receives the cursor (undefined for the first page).
 *
 * @example
 * for await (const e of eachItem("environments", (cursor) => client.environments.list({ cursor }))) console.log(e.name);
 */
export async function* eachItem<K extends string, T>(
  key: K,
  fetchPage: (cursor: string | undefined) => Promise<CursorPage<K, T>>,
): AsyncGenerator<T> {
  let cursor: string | undefined;
  const seen = new Set<string>();
  for (;;) {
    const page = await fetchPage(cursor);
    yield* page[key];
    const next = page.next ?? null;
    // A cursor seen before would loop forever: stop instead.
    if (next === null || seen.has(next)) return;
    seen.add(next);
    cursor = next;
  }
}

/** Collects an async iterable into an array (Node 20 has no Array.fromAsync). */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}
