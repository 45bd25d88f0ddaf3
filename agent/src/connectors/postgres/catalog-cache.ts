/**
 * A per-connector cache of the catalog look-ups every read page and write
 * batch needs: the entity's fields and keys ({@link lookupEntity}), its
 * foreign keys ({@link lookupForeignKeys}) and the sequences its fields use
 * ({@link lookupSequenceUses}, for the move after its last batch). A copy of
 * many small tables would otherwise spend one or two pg_catalog queries per
 * batch.
 *
 * Entries live a short while (30 s by default), so DDL is picked up without
 * any signal, and are dropped at once when a statement that used them fails
 * in a way a changed catalog explains ({@link isCatalogFailure}). A call whose
 * entry came from the cache and is refused by planning, or fails like that,
 * runs once more with an entry read afresh ({@link CatalogCache.use}), so its
 * outcome is the one an uncached call would have had (within an entry's
 * lifetime a change that makes no statement fail is not seen: a new foreign
 * key is not checked, a column's new type is cast to its old one first).
 * Concurrent calls for one entity share one look-up; at most `maxEntries`
 * entities are held, least recently used out.
 */
import { isDrayError } from "@dray/common";
import type { EntityName } from "../../connector.js";
import { type EntityInfo, lookupEntity } from "./entity-catalog.js";
import { sqlStateOf } from "./error-mapping.js";
import { type ForeignKeyInfo, lookupForeignKeys } from "./reference-checks.js";
import { lookupSequenceUses, type SequenceUse } from "./sequence-moves.js";
import type { Session } from "./session.js";

/** The catalog queries the cache stands in front of (swapped in tests to count them). */
export interface CatalogLoader {
  entity(session: Session, entity: EntityName): Promise<EntityInfo>;
  foreignKeys(session: Session, info: EntityInfo): Promise<ForeignKeyInfo[]>;
  sequences(session: Session, info: EntityInfo): Promise<SequenceUse[]>;
}

/** The real look-ups in pg_catalog. */
export const pgCatalogLoader: CatalogLoader = {
  entity: lookupEntity,
  foreignKeys: lookupForeignKeys,
  sequences: lookupSequenceUses,
};

/** Options of {@link CatalogCache}. */
export interface CatalogCacheOptions {
  /** How long a loaded entry is used, in ms; 0 caches nothing across calls. @default 30000 */
  ttlMs?: number;
  /** Entities held at most; the least recently used one goes first. @default 1000 */
  maxEntries?: number;
  /** @default pgCatalogLoader */
  loader?: CatalogLoader;
  /** Clock in ms. @default performance.now */
  now?: () => number;
}

/**
 * SQLSTATEs a statement gets when the catalog changed under a plan made from
 * an older reading of it: a table, schema, column, type or function gone
 * (42P01, 3F000, 42703, 42704, 42883), a column's type changed (42804, 42846),
 * no unique index for ON CONFLICT any more (42P10), a table replaced by
 * another kind of object (42809), a column that became GENERATED ALWAYS
 * (428C9), or a form the object no longer supports (0A000).
 */
export const CATALOG_SQLSTATES: ReadonlySet<string> = new Set([
  "42P01",
  "3F000",
  "42703",
  "42704",
  "42883",
  "42804",
  "42846",
  "42P10",
  "42809",
  "428C9",
  "0A000",
]);

/** True when a server error is one a stale catalog entry can explain (see {@link CATALOG_SQLSTATES}). */
export function isCatalogFailure(error: unknown): boolean {
  const sqlState = sqlStateOf(error);
  return sqlState !== undefined && CATALOG_SQLSTATES.has(sqlState);
}

/**
 * True when a call's planning from a cached entry failed in a way a fresh
 * entry may not: a catalog SQLSTATE (e.g. the foreign-key look-up of a
 * dropped table), or the refusals planning makes from the catalog
 * (`not_found`: an unknown field; `failed_precondition`: no usable key,
 * rules, …). Planning sends no rows, so planning again costs one look-up.
 */
function staleEntryCouldExplain(error: unknown): boolean {
  if (isCatalogFailure(error)) return true;
  return isDrayError(error) && (error.code === "not_found" || error.code === "failed_precondition");
}

/** What a call sees of one entity's catalog. */
export interface EntityCatalog {
  info: EntityInfo;
  /** True when `info` was read from pg_catalog for this call (not an earlier one). */
  fresh: boolean;
  /** The entity's foreign keys (loaded on first use, then held with the entry). */
  foreignKeys(): Promise<ForeignKeyInfo[]>;
  /** The sequences its integral fields use (loaded on first use, then held with the entry). */
  sequences(): Promise<SequenceUse[]>;
}

interface Entry {
  info: Promise<EntityInfo>;
  foreignKeys: Promise<ForeignKeyInfo[]> | undefined;
  sequences: Promise<SequenceUse[]> | undefined;
  /** When the entry stops being used; Infinity while its look-up runs. */
  expiresAt: number;
}

function keyOf(entity: EntityName): string {
  return JSON.stringify([entity.schema, entity.name]);
}

/** See the module comment. One per connector: entries are keyed by (schema, name) only. */
export class CatalogCache {
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly loader: CatalogLoader;
  private readonly now: () => number;
  private readonly entries = new Map<string, Entry>();

  constructor(options: CatalogCacheOptions = {}) {
    this.ttlMs = Math.max(0, options.ttlMs ?? 30_000);
    this.maxEntries = Math.max(1, options.maxEntries ?? 1000);
    this.loader = options.loader ?? pgCatalogLoader;
    this.now = options.now ?? (() => performance.now());
  }

  /** Entities held now (loaded or loading). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Plans a call from the entity's catalog, then runs the plan. With an entry
   * from the cache: a planning refusal a stale entry explains (see
   * {@link staleEntryCouldExplain}), or a run failing with a catalog SQLSTATE,
   * makes the call plan and run once more from an entry read afresh (unless
   * the session was cancelled), and that outcome is final. An entry read for
   * this call is never read again: its outcome is the uncached one. A plan
   * or run failing with a catalog SQLSTATE always drops the entry it used, so
   * the next call reads the catalog. `run` must leave nothing behind when it
   * fails (a write's transaction is rolled back), since it may run twice.
   *
   * @throws whatever the look-up, `plan` or `run` throws.
   */
  async use<P, T>(
    session: Session,
    entity: EntityName,
    plan: (catalog: EntityCatalog) => P | Promise<P>,
    run: (planned: P, catalog: EntityCatalog) => Promise<T>,
  ): Promise<T> {
    const first = await this.view(session, entity, false);
    const again = async (error: unknown, explains: (error: unknown) => boolean): Promise<T> => {
      if (first.fresh || session.signal.aborted || !explains(error)) throw error;
      this.invalidate(entity, first);
      const fresh = await this.view(session, entity, true);
      return this.attempt(entity, fresh, async () => run(await plan(fresh), fresh));
    };
    let planned: P;
    try {
      planned = await this.attempt(entity, first, async () => plan(first));
    } catch (error) {
      return again(error, staleEntryCouldExplain);
    }
    try {
      return await this.attempt(entity, first, () => run(planned, first));
    } catch (error) {
      return again(error, isCatalogFailure);
    }
  }

  /** Runs `fn`, dropping the entry `catalog` came from when `fn` fails with a catalog SQLSTATE. */
  private async attempt<T>(entity: EntityName, catalog: EntityCatalog, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (isCatalogFailure(error)) this.invalidate(entity, catalog);
      throw error;
    }
  }

  /** The entity's fields and keys: the cached entry when live, else one look-up shared by concurrent callers. */
  async entity(session: Session, entity: EntityName): Promise<EntityInfo> {
    return (await this.view(session, entity, false)).info;
  }

  /**
   * Drops the entity's entry. With `seen` (what a failed call used), only
   * when the entry held is still that one: a newer entry is left alone.
   */
  invalidate(entity: EntityName, seen?: EntityCatalog): void {
    const key = keyOf(entity);
    const entry = this.entries.get(key);
    if (!entry) return;
    if (seen && viewEntries.get(seen) !== entry) return;
    this.entries.delete(key);
  }

  /** Drops every entry. */
  clear(): void {
    this.entries.clear();
  }

  private async view(session: Session, entity: EntityName, forceFresh: boolean): Promise<EntityCatalog> {
    const key = keyOf(entity);
    let entry = this.entries.get(key);
    if (entry && (forceFresh || entry.expiresAt <= this.now())) {
      this.entries.delete(key);
      entry = undefined;
    }
    let fresh = false;
    if (entry) {
      // Most recently used last: Map keeps insertion order.
      this.entries.delete(key);
      this.entries.set(key, entry);
    } else {
      entry = this.load(session, entity, key);
      fresh = true;
    }
    const info = await this.settle(session, entity, key, entry, fresh);
    const view: EntityCatalog = {
      info: info.value,
      fresh: fresh || info.reloaded,
      foreignKeys: () => this.extraOf("foreignKeys", session, info.value, info.entry),
      sequences: () => this.extraOf("sequences", session, info.value, info.entry),
    };
    viewEntries.set(view, info.entry);
    return view;
  }

  /** Starts a look-up and holds it as the entity's entry; a failed look-up is not kept. */
  private load(session: Session, entity: EntityName, key: string): Entry {
    const entry: Entry = {
      info: this.loader.entity(session, entity),
      foreignKeys: undefined,
      sequences: undefined,
      expiresAt: Number.POSITIVE_INFINITY,
    };
    entry.info.then(
      () => {
        entry.expiresAt = this.now() + this.ttlMs;
        if (this.ttlMs === 0 && this.entries.get(key) === entry) this.entries.delete(key);
      },
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return entry;
  }

  /**
   * Awaits an entry's look-up. A caller that joined someone else's look-up
   * and saw it fail for a reason of that call (its session cancelled or
   * lost, not a missing table) looks the entity up itself, on its own session.
   */
  private async settle(
    session: Session,
    entity: EntityName,
    key: string,
    entry: Entry,
    own: boolean,
  ): Promise<{ value: EntityInfo; entry: Entry; reloaded: boolean }> {
    try {
      return { value: await entry.info, entry, reloaded: false };
    } catch (error) {
      if (own || (isDrayError(error) && error.code === "not_found")) throw error;
      // The failed entry is out of the map by now (its own handler ran first): join a newer one, or load.
      const current = this.entries.get(key);
      const mine = current && current !== entry ? current : this.load(session, entity, key);
      return { value: await mine.info, entry: mine, reloaded: true };
    }
  }

  /**
   * The entry's foreign keys or sequences: loaded once and shared. A caller
   * that joined someone else's look-up and saw it fail for a reason of that
   * call looks them up again on its own session.
   */
  private async extraOf<K extends "foreignKeys" | "sequences">(
    kind: K,
    session: Session,
    info: EntityInfo,
    entry: Entry,
  ): Promise<Awaited<NonNullable<Entry[K]>>> {
    type Value = Awaited<NonNullable<Entry[K]>>;
    const shared = entry[kind] as Promise<Value> | undefined;
    if (shared) {
      try {
        return await shared;
      } catch (error) {
        if (isCatalogFailure(error) || session.signal.aborted) throw error;
      }
    }
    const loading = this.loader[kind](session, info) as Promise<Value>;
    (entry as Record<K, Promise<Value> | undefined>)[kind] = loading;
    loading.catch(() => {
      if (entry[kind] === loading) (entry as Record<K, Promise<Value> | undefined>)[kind] = undefined;
    });
    return loading;
  }
}

/** The entry each view was made from, for {@link CatalogCache.invalidate} with `seen`. */
const viewEntries = new WeakMap<EntityCatalog, Entry>();
