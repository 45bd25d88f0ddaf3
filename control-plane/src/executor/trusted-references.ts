/**
 * Which references of an entity a run need not check while it writes (pure).
 *
 * With the target's triggers off, the target agent checks every foreign key of
 * the rows it writes, one set-based statement per key and batch: on a large
 * copy that costs the target database about as much as the COPY itself. When
 * a run reads every entity in one snapshot of the source (run-snapshot.ts),
 * a reference the source enforces for every row cannot be broken by rows read
 * in that snapshot, provided the referenced entity was copied whole from the
 * same snapshot first: pg_restore --disable-triggers relies on the same fact
 * without checking anything. This module picks the references that qualify
 * at plan time; run-snapshot.ts decides at each write whether they still do.
 */
import type { EntitySnapshot } from "../environments/schema-snapshot.js";

/** A reference a write may leave unchecked, and the entity it references. */
export interface TrustedReference {
  /** The constraint name, the same on both sides. */
  name: string;
  /** `schema.table` */
  referencedEntity: string;
}

/** What the run plan says about the entities, for {@link trustableReferences}. */
export interface TrustContext {
  /** Entities the run copies. */
  selected: ReadonlySet<string>;
  /** Fields the source agent transforms, per entity. */
  transformedFields(entity: string): ReadonlySet<string>;
  /** Constraint names already written unchecked and validated after load (NOT NULL cycles). */
  postponed: ReadonlySet<string>;
}

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * The references of `source` (an entity of the run) that a write may leave
 * unchecked once the entity they reference is loaded whole from the run's
 * snapshot: enforced by the source for every row (`validated`), to another
 * entity of the run, declared the same way on the target (name, fields,
 * referenced entity and fields), and with no transformed field on either side
 * (a transformed key is no longer the value the source checked). A
 * self-reference is left out (its rows arrive in the same batches), and so
 * is a postponed one (validated after load anyway).
 *
 * @example
 * trustableReferences(orders, targetOrders, { selected: new Set(["public.customers", "public.orders"]), … })
 * // [{ name: "orders_customer_id_fkey", referencedEntity: "public.customers" }]
 */
export function trustableReferences(
  source: EntitySnapshot,
  target: EntitySnapshot | undefined,
  context: TrustContext,
): TrustedReference[] {
  if (!target) return [];
  const own = context.transformedFields(source.entity);
  return source.references
    .filter((r) => r.validated === true)
    .filter((r) => r.referencedEntity !== source.entity && context.selected.has(r.referencedEntity))
    .filter((r) => !context.postponed.has(r.name))
    .filter((r) =>
      target.references.some(
        (t) =>
          t.name === r.name &&
          t.referencedEntity === r.referencedEntity &&
          sameList(t.fields, r.fields) &&
          sameList(t.referencedFields, r.referencedFields),
      ),
    )
    .filter((r) => !r.fields.some((f) => own.has(f)))
    .filter((r) => {
      const theirs = context.transformedFields(r.referencedEntity);
      return !r.referencedFields.some((f) => theirs.has(f));
    })
    .map((r) => ({ name: r.name, referencedEntity: r.referencedEntity }));
}
