import { DrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import type { EntityName } from "../../connector.js";
import { CatalogCache, type CatalogLoader, type EntityCatalog, isCatalogFailure } from "./catalog-cache.js";
import type { EntityInfo } from "./entity-catalog.js";
import type { ForeignKeyInfo } from "./reference-checks.js";
import type { Session } from "./session.js";

const USERS: EntityName = { schema: "app", name: "users" };
const ORDERS: EntityName = { schema: "app", name: "orders" };

function infoOf(entity: EntityName, version = 1): EntityInfo {
  return {
    entity,
    fields: [
      {
        name: `v${version}`,
        type: "integer",
        castType: "integer",
        notNull: true,
        hasDefault: false,
        generated: false,
        identity: "",
      },
    ],
    primaryKey: [`v${version}`],
    uniqueKeys: [[`v${version}`]],
    uniqueIndexes: [{ name: "pk", columns: [`v${version}`], primary: true }],
    partitioned: false,
    inheritanceParent: false,
    hasRules: false,
  };
}

/** A server error as postgres.js raises it. */
function serverError(code: string): Error {
  const error = new Error(`server said ${code}`) as Error & { code: string };
  error.name = "PostgresError";
  error.code = code;
  return error;
}

function fakeSession(): Session & { abort(): void } {
  const controller = new AbortController();
  return { signal: controller.signal, abort: () => controller.abort() } as unknown as Session & {
    abort(): void;
  };
}

/** A loader counting its calls; `version` is what the "catalog" holds now; `gate` holds look-ups back. */
function countingLoader() {
  const state = {
    entityCalls: 0,
    foreignKeyCalls: 0,
    sequenceCalls: 0,
    version: 1,
    missing: new Set<string>(),
    gate: null as Promise<void> | null,
    failNext: null as Error | null,
  };
  const loader: CatalogLoader = {
    async entity(_session, entity) {
      state.entityCalls++;
      if (state.gate) await state.gate;
      if (state.failNext) {
        const error = state.failNext;
        state.failNext = null;
        throw error;
      }
      if (state.missing.has(entity.name))
        throw new DrayError("not_found", `entity ${entity.name} was not found`);
      return infoOf(entity, state.version);
    },
    async foreignKeys(_session, info): Promise<ForeignKeyInfo[]> {
      state.foreignKeyCalls++;
      if (state.gate) await state.gate;
      return [
        {
          name: `fk_${info.entity.name}`,
          fields: ["v1"],
          referenced: { schema: "app", name: "parent" },
          referencedPartitioned: false,
          referencedFields: ["id"],
          matchFull: false,
        },
      ];
    },
    async sequences(_session, info) {
      state.sequenceCalls++;
      if (state.gate) await state.gate;
      return [
        {
          oid: "1",
          schema: "app",
          name: `${info.entity.name}_id_seq`,
          field: "id",
          integral: true,
          max_value: "2147483647",
          increment: "1",
          allowed: true,
        },
      ];
    },
  };
  return { state, loader };
}

/** `cache.use` with nothing to plan: `fn` is the run. */
function run<T>(
  cache: CatalogCache,
  session: Session,
  entity: EntityName,
  fn: (catalog: EntityCatalog) => Promise<T>,
): Promise<T> {
  return cache.use(
    session,
    entity,
    () => null,
    (_planned, catalog) => fn(catalog),
  );
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe("CatalogCache", () => {
  it("looks an entity and its foreign keys up once for many calls", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const session = fakeSession();
    for (let i = 0; i < 5; i++)
      await run(cache, session, USERS, async ({ info, foreignKeys }) => {
        expect(info.entity).toEqual(USERS);
        expect(await foreignKeys()).toHaveLength(1);
      });
    expect(state.entityCalls).toBe(1);
    expect(state.foreignKeyCalls).toBe(1);
    await cache.entity(session, ORDERS);
    expect(state.entityCalls).toBe(2);
  });

  it("shares one look-up between concurrent calls for the same entity", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const held = gate();
    state.gate = held.promise;
    const both = Promise.all([
      run(cache, fakeSession(), USERS, async ({ info, foreignKeys }) => [info, await foreignKeys()]),
      run(cache, fakeSession(), USERS, async ({ info, foreignKeys }) => [info, await foreignKeys()]),
    ]);
    held.open();
    const [a, b] = await both;
    expect(a[0]).toBe(b[0]);
    expect(a[1]).toBe(b[1]);
    expect(state.entityCalls).toBe(1);
    expect(state.foreignKeyCalls).toBe(1);
  });

  it("loads an entity's sequences once, on first use, and holds them with its entry", async () => {
    const { state, loader } = countingLoader();
    let clock = 0;
    const cache = new CatalogCache({ loader, ttlMs: 30_000, now: () => clock });
    const uses = () => run(cache, fakeSession(), USERS, ({ sequences }) => sequences());
    expect(state.sequenceCalls).toBe(0);
    const [first, second] = await Promise.all([uses(), uses()]);
    expect(first).toBe(second);
    expect(first.map((u) => u.name)).toEqual(["users_id_seq"]);
    expect(await uses()).toBe(first);
    expect(state.sequenceCalls).toBe(1);
    expect(state.foreignKeyCalls).toBe(0);
    clock = 30_000;
    await uses();
    expect(state.sequenceCalls).toBe(2);
  });

  it("reads the catalog again once an entry has lived its time", async () => {
    const { state, loader } = countingLoader();
    let clock = 0;
    const cache = new CatalogCache({ loader, ttlMs: 30_000, now: () => clock });
    const session = fakeSession();
    await cache.entity(session, USERS);
    clock = 29_999;
    await cache.entity(session, USERS);
    expect(state.entityCalls).toBe(1);
    state.version = 2;
    clock = 30_000;
    expect((await cache.entity(session, USERS)).fields[0]!.name).toBe("v2");
    expect(state.entityCalls).toBe(2);
  });

  it("holds at most maxEntries entities, the least recently used going first", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, maxEntries: 2, now: () => 0 });
    const session = fakeSession();
    const c: EntityName = { schema: "app", name: "c" };
    await cache.entity(session, USERS);
    await cache.entity(session, ORDERS);
    await cache.entity(session, USERS); // users is now the most recently used
    await cache.entity(session, c); // orders goes
    expect(cache.size).toBe(2);
    expect(state.entityCalls).toBe(3);
    await cache.entity(session, USERS);
    expect(state.entityCalls).toBe(3);
    await cache.entity(session, ORDERS);
    expect(state.entityCalls).toBe(4);
  });

  it("does not keep a failed look-up: a missing table is looked up again next time", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const session = fakeSession();
    state.missing.add("users");
    await expect(cache.entity(session, USERS)).rejects.toMatchObject({ code: "not_found" });
    state.missing.clear();
    await expect(cache.entity(session, USERS)).resolves.toMatchObject({ entity: USERS });
    expect(state.entityCalls).toBe(2);
  });

  it("on a catalog failure with a cached entry, drops it and runs once more with a fresh one", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const session = fakeSession();
    await cache.entity(session, USERS);
    state.version = 2; // the table changed after the entry was read
    const seen: string[] = [];
    const result = await run(cache, session, USERS, async ({ info, fresh }) => {
      seen.push(`${info.fields[0]!.name}:${fresh}`);
      if (info.fields[0]!.name === "v1") throw serverError("42703");
      return "written";
    });
    expect(result).toBe("written");
    expect(seen).toEqual(["v1:false", "v2:true"]);
    expect(state.entityCalls).toBe(2);
  });

  it("a second catalog failure (with the fresh entry) is final and drops that entry too", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const session = fakeSession();
    await cache.entity(session, USERS);
    let runs = 0;
    await expect(
      run(cache, session, USERS, async () => {
        runs++;
        throw serverError("42P01");
      }),
    ).rejects.toMatchObject({ code: "42P01" });
    expect(runs).toBe(2);
    expect(state.entityCalls).toBe(2);
    expect(cache.size).toBe(0);
  });

  it("re-plans a refusal made from a cached entry (an unknown field) from a fresh one", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const session = fakeSession();
    await cache.entity(session, USERS);
    state.version = 2;
    const runs: string[] = [];
    const result = await cache.use(
      session,
      USERS,
      ({ info }) => {
        if (info.fields[0]!.name !== "v2") throw new DrayError("not_found", "field v2 was not found");
        return info.fields[0]!.name;
      },
      async (planned) => {
        runs.push(planned);
        return "written";
      },
    );
    expect(result).toBe("written");
    expect(runs).toEqual(["v2"]);
  });

  it("does not run again for a refusal of the run (it may have done work), only for catalog failures", async () => {
    const { loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const session = fakeSession();
    await cache.entity(session, USERS);
    let runs = 0;
    await expect(
      run(cache, session, USERS, async () => {
        runs++;
        throw new DrayError("failed_precondition", "a row breaks a foreign key");
      }),
    ).rejects.toMatchObject({ code: "failed_precondition" });
    expect(runs).toBe(1);
    expect(cache.size).toBe(1);
  });

  it("fails a call planned from a fresh entry as it is, dropping the entry on a catalog failure", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const session = fakeSession();
    let runs = 0;
    const failing = async () => {
      runs++;
      throw serverError("42P01");
    };
    await expect(run(cache, session, USERS, failing)).rejects.toMatchObject({ code: "42P01" });
    expect(runs).toBe(1);
    expect(cache.size).toBe(0);
    // A refusal from a fresh entry keeps it (the catalog said so just now).
    await expect(
      run(cache, session, USERS, async () => {
        throw new DrayError("not_found", "field x was not found");
      }),
    ).rejects.toMatchObject({ code: "not_found" });
    expect(cache.size).toBe(1);
    expect(state.entityCalls).toBe(2);
  });

  it("does not run again for failures a stale entry cannot explain, nor after a cancel", async () => {
    const { loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const session = fakeSession();
    await cache.entity(session, USERS);
    let runs = 0;
    await expect(
      run(cache, session, USERS, async () => {
        runs++;
        throw serverError("23505");
      }),
    ).rejects.toMatchObject({ code: "23505" });
    expect(runs).toBe(1);
    expect(cache.size).toBe(1);
    session.abort();
    await expect(
      run(cache, session, USERS, async () => {
        runs++;
        throw serverError("42703");
      }),
    ).rejects.toMatchObject({ code: "42703" });
    expect(runs).toBe(2);
    expect(cache.size).toBe(0);
  });

  it("a caller that joined a look-up failing for its starter's reasons looks up on its own session", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, now: () => 0 });
    const held = gate();
    state.gate = held.promise;
    state.failNext = new DrayError("cancelled", "cancelled");
    const first = cache.entity(fakeSession(), USERS);
    const second = cache.entity(fakeSession(), USERS);
    held.open();
    await expect(first).rejects.toMatchObject({ code: "cancelled" });
    await expect(second).resolves.toMatchObject({ entity: USERS });
    expect(state.entityCalls).toBe(2);
  });

  it("with ttlMs 0 keeps nothing across calls", async () => {
    const { state, loader } = countingLoader();
    const cache = new CatalogCache({ loader, ttlMs: 0 });
    const session = fakeSession();
    await cache.entity(session, USERS);
    await cache.entity(session, USERS);
    expect(state.entityCalls).toBe(2);
    expect(cache.size).toBe(0);
  });

  it("tells catalog failures from others", () => {
    expect(isCatalogFailure(serverError("42703"))).toBe(true);
    expect(isCatalogFailure(serverError("0A000"))).toBe(true);
    expect(isCatalogFailure(serverError("23505"))).toBe(false);
    expect(isCatalogFailure(new DrayError("not_found", "x"))).toBe(false);
  });
});
