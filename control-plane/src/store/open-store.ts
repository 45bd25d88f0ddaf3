/**
 * Opens the control plane's store: Postgres through postgres.js when a URL is
 * configured, otherwise embedded PGlite (on disk, or in memory for tests).
 * Migrations from control-plane/drizzle run on open in both cases.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Logger, silentLogger } from "@dray/common";
import type { Db } from "./db.js";
import { preparingClient } from "./preparing-client.js";
import { schema } from "./schema.js";

export type { Db } from "./db.js";

/** An open store. `close()` ends the pool (Postgres) or shuts PGlite down. */
export interface Store {
  db: Db;
  kind: "postgres" | "pglite";
  close(): Promise<void>;
}

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** postgres:// URL. Unset: embedded PGlite under `dataDir`. */
  databaseUrl?: string | undefined;
  /** Directory of embedded state; the store lives in `${dataDir}/store`. `"memory://"` keeps it in memory. */
  dataDir: string;
  logger?: Logger;
  /** Connections in the Postgres pool. @default 10 */
  poolSize?: number;
}

/** Value of the session-level advisory lock taken around migrations, so replicas don't race. */
const MIGRATION_LOCK_KEY = 7_272_001;

/** The drizzle-kit output folder shipped with the package. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));

/**
 * Opens and migrates the store.
 *
 * @example
 * const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
 * try { ... } finally { await store.close(); }
 */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const logger = options.logger ?? silentLogger;
  const started = performance.now();
  const store = options.databaseUrl
    ? await openPostgres(options.databaseUrl, options.poolSize ?? 10, logger)
    : await openPglite(options.dataDir, logger);
  logger.info("store opened", { kind: store.kind, ms: Math.round(performance.now() - started) });
  return store;
}

async function openPostgres(url: string, poolSize: number, logger: Logger): Promise<Store> {
  const postgres = (await import("postgres")).default;
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const { migrate } = await import("drizzle-orm/postgres-js/migrator");
  const onnotice = (notice: { message?: string }) =>
    logger.debug("postgres notice", { notice: notice.message });

  // The migrator takes no lock itself: hold a session advisory lock on a single
  // connection for the whole run; ending the connection releases it.
  const migrator = postgres(url, { max: 1, onnotice });
  try {
    await migrator`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migrate(drizzle(migrator), { migrationsFolder: MIGRATIONS_FOLDER });
  } finally {
    await migrator.end({ timeout: 5 });
  }

  const client = postgres(url, { max: poolSize, onnotice });
  const db = drizzle(preparingClient(client), { schema }) as unknown as Db;
  return { db, kind: "postgres", close: () => client.end({ timeout: 5 }) };
}

async function openPglite(dataDir: string, logger: Logger): Promise<Store> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  const { migrate } = await import("drizzle-orm/pglite/migrator");
  let pg: InstanceType<typeof PGlite>;
  if (dataDir === "memory://") {
    pg = new PGlite();
  } else {
    // Only one process may open a PGlite directory at a time.
    const dir = join(dataDir, "store");
    await mkdir(dir, { recursive: true });
    logger.debug("opening embedded store", { dir });
    pg = new PGlite(dir);
  }
  const db = drizzle(pg, { schema });
  try {
    await migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
  } catch (error) {
    await pg.close().catch(() => {});
    throw error;
  }
  return { db: db as unknown as Db, kind: "pglite", close: () => pg.close() };
}
