import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@dray/common";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrganisation } from "../src/organisations/organisations-service.js";
import {
  isUniqueViolation,
  MIGRATIONS_FOLDER,
  newId,
  openStore,
  organisations,
  rowsOf,
  type Store,
} from "../src/store/index.js";
import { createTestDatabase, openApiHarness } from "./api-test-harness.js";

const TABLES = [
  "agent_sessions",
  "agents",
  "api_tokens",
  "enrollment_tokens",
  "environments",
  "execution_batches",
  "execution_entities",
  "execution_errors",
  "execution_events",
  "execution_log",
  "executions",
  "organisations",
  "pipeline_files",
  "pipelines",
  "staged_file_chunks",
  "target_entity_locks",
  "usage",
  "web_sessions",
  "web_sign_in_links",
];

async function tablesOf(store: Store): Promise<string[]> {
  const rows = rowsOf<{ table_name: string }>(
    await store.db.execute(
      sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
    ),
  );
  return rows.map((r) => r.table_name);
}

async function expectUniqueViolation(store: Store): Promise<void> {
  const id = newId();
  await store.db.insert(organisations).values({ id, name: "dup", monthlyRecordLimit: 1 });
  const error = await store.db
    .insert(organisations)
    .values({ id, name: "dup", monthlyRecordLimit: 1 })
    .then(() => undefined)
    .catch((e: unknown) => e);
  expect(isUniqueViolation(error)).toBe(true);
}

describe("store on PGlite in memory", () => {
  it("migrates at open and serves the API (create + list)", async () => {
    const h = await openApiHarness(undefined);
    try {
      expect(h.store.kind).toBe("pglite");
      expect(await tablesOf(h.store)).toEqual(TABLES);
      const org = await h.tenant("embedded");
      const created = await h.call("POST", "/api/v1/environments", {
        token: org.operator,
        json: { name: "qa" },
      });
      expect(created.status).toBe(201);
      const list = await h.call("GET", "/api/v1/environments", { token: org.viewer });
      expect(list.status).toBe(200);
      expect(list.body.environments.map((e: { name: string }) => e.name)).toEqual(["qa"]);
      await expectUniqueViolation(h.store);
    } finally {
      await h.close();
    }
  });
});

describe("store on PGlite on disk", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dray-store-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("creates <dataDir>/store and keeps data across reopen", async () => {
    const first = await openStore({ dataDir: dir, logger: silentLogger });
    const org = await createOrganisation(first.db, { name: "kept", monthlyRecordLimit: 7 }, new Date());
    await first.close();
    expect((await stat(join(dir, "store"))).isDirectory()).toBe(true);

    const second = await openStore({ dataDir: dir, logger: silentLogger });
    try {
      const rows = await second.db.select().from(organisations);
      expect(rows.map((r) => [r.id, r.name, r.monthlyRecordLimit])).toEqual([[org.id, "kept", 7]]);
    } finally {
      await second.close();
    }
  });
});

describe("store on Postgres", () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it("migrates once when replicas open concurrently (advisory lock)", async () => {
    const stores = await Promise.all(
      [1, 2, 3].map(() => openStore({ databaseUrl: database.url, dataDir: "unused" })),
    );
    try {
      for (const store of stores) expect(store.kind).toBe("postgres");
      expect(await tablesOf(stores[0]!)).toEqual(TABLES);
      const applied = rowsOf<{ n: number }>(
        await stores[0]!.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
      );
      const journal = JSON.parse(await readFile(join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8"));
      expect(applied[0]!.n).toBe(journal.entries.length);
      await expectUniqueViolation(stores[1]!);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});
