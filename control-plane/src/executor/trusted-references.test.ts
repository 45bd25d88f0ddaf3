import { describe, expect, it } from "vitest";
import type { EntitySnapshot } from "../environments/schema-snapshot.js";
import type { RunContext } from "./run-context.js";
import { noteEntityLoaded, noteSnapshotGone, trustedNow } from "./run-snapshot.js";
import { type TrustContext, trustableReferences } from "./trusted-references.js";

type Reference = EntitySnapshot["references"][number];

const entity = (name: string, references: Reference[]): EntitySnapshot => ({
  entity: `public.${name}`,
  schema: "public",
  name,
  fields: [],
  primaryKey: ["id"],
  references,
  estimatedRows: 0,
});
const ref = (name: string, referenced: string, extra: Partial<Reference> = {}): Reference => ({
  name,
  fields: [`${referenced}_id`],
  referencedEntity: `public.${referenced}`,
  referencedFields: ["id"],
  validated: true,
  ...extra,
});
const context = (extra: Partial<TrustContext> = {}): TrustContext => ({
  selected: new Set(["public.shop", "public.region", "public.sale"]),
  transformedFields: () => new Set(),
  postponed: new Set(),
  ...extra,
});
const names = (source: EntitySnapshot, target: EntitySnapshot | undefined, c = context()) =>
  trustableReferences(source, target, c).map((r) => r.name);

describe("trustableReferences", () => {
  const sale = entity("sale", [ref("sale_shop_fk", "shop")]);

  it("trusts a validated reference to an entity of the run, declared alike on the target", () => {
    expect(trustableReferences(sale, sale, context())).toEqual([
      { name: "sale_shop_fk", referencedEntity: "public.shop" },
    ]);
  });

  it("leaves out what the source does not enforce for every row, or that the target declares otherwise", () => {
    expect(names(entity("sale", [ref("sale_shop_fk", "shop", { validated: false })]), sale)).toEqual([]);
    expect(names(entity("sale", [ref("sale_shop_fk", "shop", { validated: undefined })]), sale)).toEqual([]);
    expect(names(sale, undefined)).toEqual([]);
    expect(names(sale, entity("sale", [ref("other_name", "shop")]))).toEqual([]);
    expect(names(sale, entity("sale", [ref("sale_shop_fk", "region")]))).toEqual([]);
    expect(
      names(sale, entity("sale", [ref("sale_shop_fk", "shop", { referencedFields: ["code"] })])),
    ).toEqual([]);
    expect(names(sale, entity("sale", [ref("sale_shop_fk", "shop", { fields: ["other_id"] })]))).toEqual([]);
  });

  it("leaves out references to entities outside the run, self-references and postponed references", () => {
    expect(names(sale, sale, context({ selected: new Set(["public.sale"]) }))).toEqual([]);
    const node = entity("node", [ref("node_parent_fk", "node")]);
    expect(names(node, node, context({ selected: new Set(["public.node"]) }))).toEqual([]);
    expect(names(sale, sale, context({ postponed: new Set(["sale_shop_fk"]) }))).toEqual([]);
  });

  it("leaves out a reference with a transformed field on either side", () => {
    const transformed = (entityName: string, field: string) =>
      context({ transformedFields: (e) => new Set(e === entityName ? [field] : []) });
    expect(names(sale, sale, transformed("public.sale", "shop_id"))).toEqual([]);
    expect(names(sale, sale, transformed("public.shop", "id"))).toEqual([]);
    expect(names(sale, sale, transformed("public.shop", "name"))).toEqual(["sale_shop_fk"]);
  });
});

describe("trustedNow", () => {
  const plan = {
    trustedReferences: [
      { name: "sale_shop_fk", referencedEntity: "public.shop" },
      { name: "sale_region_fk", referencedEntity: "public.region" },
    ],
  };
  const counters = (skipped: number, failed: number) => ({
    total: 10,
    processed: 10,
    created: 10,
    updated: 0,
    skipped,
    failed,
  });
  const run = (snapshot: boolean) => {
    const stages: string[] = [];
    const ctx = {
      counters: new Map([
        ["public.shop", counters(0, 0)],
        ["public.region", counters(1, 0)],
      ]),
      journal: { stage: async (s: { code: string }) => void stages.push(s.code) },
      ...(snapshot
        ? { snapshot: { id: "00000003-0000001B-1", lost: false, loadedWhole: new Set<string>() } }
        : {}),
    } as unknown as RunContext;
    return { ctx, stages };
  };

  it("trusts only references to entities copied whole in the snapshot", () => {
    const { ctx } = run(true);
    expect(trustedNow(ctx, plan)).toEqual([]);
    noteEntityLoaded(ctx, "public.shop");
    // region skipped a row: not copied whole.
    noteEntityLoaded(ctx, "public.region");
    expect(trustedNow(ctx, plan)).toEqual(["sale_shop_fk"]);
  });

  it("trusts nothing without a snapshot, nor once it is gone", async () => {
    const without = run(false);
    noteEntityLoaded(without.ctx, "public.shop");
    expect(trustedNow(without.ctx, plan)).toEqual([]);
    const { ctx, stages } = run(true);
    noteEntityLoaded(ctx, "public.shop");
    await noteSnapshotGone(ctx);
    await noteSnapshotGone(ctx);
    expect(stages).toEqual(["snapshot_lost"]);
    expect(trustedNow(ctx, plan)).toEqual([]);
    noteEntityLoaded(ctx, "public.shop");
    expect(trustedNow(ctx, plan)).toEqual([]);
  });
});
