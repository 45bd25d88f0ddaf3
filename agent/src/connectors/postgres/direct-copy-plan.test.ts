import { describe, expect, it } from "vitest";
import type { WriteBatchRequest } from "../../connector.js";
import { planDirectCopy, probeParams } from "./direct-copy-plan.js";
import type { EntityInfo, FieldInfo } from "./entity-catalog.js";
import { planWrite } from "./write-plan.js";

const field = (name: string, castType = "bigint"): FieldInfo => ({
  name,
  type: castType,
  castType,
  notNull: true,
  hasDefault: false,
  generated: false,
  identity: "",
});
const info: EntityInfo = {
  entity: { schema: "s", name: 'odd "name"' },
  fields: [field("id"), field("kind", "text"), field("label", "text")],
  primaryKey: ["id"],
  uniqueKeys: [["id"], ["kind", "id"]],
  uniqueIndexes: [
    { name: "pk", columns: ["id"], primary: true },
    { name: "kind_id", columns: ["kind", "id"], primary: false },
  ],
  partitioned: false,
  inheritanceParent: false,
  hasRules: false,
};
const request = (extra: Partial<WriteBatchRequest> = {}): WriteBatchRequest => ({
  batchId: "b1",
  entity: info.entity,
  strategy: "insert",
  keyFields: ["id"],
  rows: { encoding: "copy_text", fields: ["id", "kind", "label"], rowCount: 0, data: new Uint8Array() },
  rejectPolicy: "isolate",
  ...extra,
});
const plan = (extra: Partial<WriteBatchRequest> = {}) => {
  const req = request(extra);
  const write = planWrite(info, req);
  return { write, direct: planDirectCopy(info, write, req.strategy) };
};

describe("planDirectCopy", () => {
  it("copies the written fields into the quoted target", () => {
    expect(plan().direct?.copySql).toBe('copy "s"."odd ""name""" ("id", "kind", "label") from stdin');
  });

  it("probes the key range with typed bounds read from the settings, then checks the catalog of the target", () => {
    const { direct } = plan();
    const p = (i: number) => `pg_catalog.current_setting('dray.p${i}')`;
    expect(
      direct?.probeSql.startsWith(
        `select exists (select 1 from "s"."odd ""name""" where ("id") >= (${p(1)}::bigint) and ("id") <= (${p(2)}::bigint)) as taken, (`,
      ),
    ).toBe(true);
    // No bind parameter: it is sent in the same round trip as the statement that sets them.
    expect(direct?.probeSql).not.toMatch(/\$\d/);
    expect(direct?.probeSql).toContain("pg_catalog.pg_rewrite");
    expect(direct?.probeSql).toContain("pg_catalog.pg_partition_tree(c.oid)");
    expect(direct?.probeSql).toContain("(g.tgtype & 7) = 7");
    expect(direct?.probeSql.endsWith(`where c.oid = ${p(3)}::text::regclass`)).toBe(true);
    // An insert neither updates nor needs an arbiter.
    expect(direct?.probeSql).not.toContain("tgtype & 16");
    expect(direct?.probeSql).not.toContain("indimmediate");
    expect(direct?.catalogParams).toEqual(['"s"."odd ""name"""']);
  });

  it("for merge, also requires an immediate arbiter on exactly the key, privileges, and no UPDATE triggers", () => {
    const { direct } = plan({ strategy: "merge", keyFields: ["kind", "id"] });
    const p = (i: number) => `pg_catalog.current_setting('dray.p${i}')`;
    expect(direct?.probeSql).toContain(
      `("kind", "id") >= (${p(1)}::text, ${p(2)}::bigint) and ("kind", "id") <= (${p(3)}::text, ${p(4)}::bigint)`,
    );
    expect(direct?.probeSql).toContain("bool_and(i.indimmediate)");
    expect(direct?.probeSql).toContain(`a.attname = any(${p(6)}::text[])`);
    expect(direct?.probeSql).toContain("(g.tgtype & 16) <> 0");
    expect(direct?.probeSql).toContain("has_table_privilege(c.oid, 'UPDATE')");
    expect(direct?.probeSql.endsWith(`where c.oid = ${p(5)}::text::regclass`)).toBe(true);
    expect(direct?.catalogParams).toEqual(['"s"."odd ""name"""', '{"kind","id"}']);
  });

  it("leaves updates, keyless inserts and keys no unique index starts with to the staged path", () => {
    expect(plan({ strategy: "update" }).direct).toBeNull();
    // No unique index starts with label, so a range over (label, id) could scan the whole table.
    expect(plan({ keyFields: ["label", "id"] }).direct).toBeNull();
    expect(plan({ keyFields: ["id", "label"] }).direct).not.toBeNull();
    expect(plan({ strategy: "merge", keyFields: ["kind", "id"] }).direct).not.toBeNull();
    const keyless = { ...info, primaryKey: [], uniqueKeys: [], uniqueIndexes: [] };
    const write = planWrite(keyless, request({ keyFields: [] }));
    expect(planDirectCopy(keyless, write, "insert")).toBeNull();
  });
});

describe("probeParams", () => {
  const { write, direct } = plan({ strategy: "merge", keyFields: ["kind", "id"] });
  const params = (text: string) => probeParams(write, direct!, Buffer.from(text));

  it("takes the key of the first and the last line, decoded, then the catalog parameters", () => {
    expect(params("1\ta\\tb\tx\n2\tb\ty\n3\tc\\\\\tz\n")).toEqual([
      "a\tb",
      "1",
      "c\\",
      "3",
      ...direct!.catalogParams,
    ]);
  });

  it("uses a single line as both bounds", () => {
    expect(params("7\tk\tx\n")).toEqual(["k", "7", "k", "7", ...direct!.catalogParams]);
  });

  it("gives up on a NULL key value or an empty batch", () => {
    expect(params("\\N\ta\tx\n2\tb\ty\n")).toBeNull();
    expect(params("1\ta\tx\n2\t\\N\ty\n")).toBeNull();
    expect(params("")).toBeNull();
  });
});
