import { randomBytes } from "node:crypto";
import postgres from "postgres";
import type { Connector } from "../../src/connector.js";
import { createPostgresConnector } from "../../src/connectors/postgres/index.js";

/** A database of a test file's own on the test server, with a pool and a connector on it. */
export interface OwnDatabase {
  sql: postgres.Sql;
  connector: Connector;
  /** Closes the connector and pools and drops the database (FORCE). */
  drop(): Promise<void>;
}

/** Creates a fresh database on `baseUrl`'s server and runs `setupSql` in it. */
export async function createOwnDatabase(baseUrl: string, setupSql: string): Promise<OwnDatabase> {
  const name = `dray_t_${randomBytes(6).toString("hex")}`;
  const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  const sql = postgres(url.toString(), { max: 2, onnotice: () => {} });
  await sql.unsafe(setupSql);
  const connector = createPostgresConnector({ url: url.toString(), maxConnections: 6 });
  return {
    sql,
    connector,
    async drop() {
      await connector.close();
      await sql.end({ timeout: 5 });
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}
