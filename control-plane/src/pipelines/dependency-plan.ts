import { DrayError } from "@dray/common";
import type { EntitySnapshot } from "../environments/schema-snapshot.js";

/**
 * What {@link planDependencies} orders.
 *
 * @example
 * const input: PlanInput = { entities: selected, allEntities: snapshot.entities };
 */
export interface PlanInput {
  /** The selected entities, as described by the source snapshot. */
  entities: EntitySnapshot[];
  /** The whole source snapshot, used to tell whether an unselected referenced entity exists at all. */
  allEntities?: EntitySnapshot[];
}

/**
 * A reference (foreign key) that is not honoured by the load order: pass 1 loads the
 * entity with these fields NULL, pass 2 back-fills them once every row exists.
 *
 * @example
 * const ref: DeferredReference = { entity: "public.employees", reference: "employees_manager_fk",
 *   fields: ["manager_id"], referencedEntity: "public.employees" };
 */
export interface DeferredReference {
  entity: string;
  /** Constraint name. */
  reference: string;
  fields: string[];
  referencedEntity: string;
}

/**
 * Something the plan can work with but the user should know about.
 *
 * @example
 * const warning: PlanWarning = { code: "missing_primary_key", entity: "public.logs",
 *   message: "public.logs has no primary key…" };
 */
export interface PlanWarning {
  code: "unselected_reference" | "self_reference" | "missing_primary_key";
  entity: string;
  message: string;
  details?: unknown;
}

/**
 * The load order of an execution (DESIGN §5, Plan).
 *
 * @example
 * for (const level of plan.levels) await Promise.all(level.map(loadEntity)); // bounded in practice
 */
export interface DependencyPlan {
  /** Topological levels, level 0 first; a level's entities do not depend on each other; names sorted. */
  levels: string[][];
  /** Every reference loaded NULL in pass 1 and back-filled in pass 2 (cycle breaks and self-references). */
  deferred: DeferredReference[];
  /** Each cycle (strongly connected component of more than one entity) and the references deferred to break it. */
  cycles: { entities: string[]; resolvedBy: DeferredReference[] }[];
  /** Nullable self-references, deferred (also listed in `deferred`); NOT NULL ones are kept and warned about. */
  selfReferences: DeferredReference[];
  warnings: PlanWarning[];
}

interface Ref extends DeferredReference {
  nullable: boolean;
}

/**
 * Orders the selected entities so that referenced entities load before the entities referencing them.
 * Cycles are broken by deferring nullable references; nullable self-references are deferred too.
 * Pure and deterministic: the same entities in any order give the same plan.
 *
 * @throws DrayError `invalid_argument` when nothing is selected; `failed_precondition` (details
 *   `{ reason: "unresolvable_cycle", cycle }`) when a cycle has no nullable reference to defer.
 * @example
 * const plan = planDependencies({ entities: [accounts, contacts] });
 * // plan.levels → [["public.accounts"], ["public.contacts"]]
 */
export function planDependencies(input: PlanInput): DependencyPlan {
  if (input.entities.length === 0) throw new DrayError("invalid_argument", "select at least one entity");
  const selected = new Map<string, EntitySnapshot>();
  for (const e of [...input.entities].sort((a, b) => compare(a.entity, b.entity))) {
    if (!selected.has(e.entity)) selected.set(e.entity, e);
  }
  const known = input.allEntities ? new Set(input.allEntities.map((e) => e.entity)) : undefined;
  const names = [...selected.keys()];
  const warnings: PlanWarning[] = [];
  const selfReferences: DeferredReference[] = [];
  const edges: Ref[] = [];

  for (const e of selected.values()) {
    if (e.primaryKey.length === 0) {
      warnings.push({
        code: "missing_primary_key",
        entity: e.entity,
        message: `${e.entity} has no primary key, so it cannot be read in keyset order; add a primary key or leave it out`,
      });
    }
    for (const r of [...e.references].sort((a, b) => compare(a.name, b.name))) {
      const ref = toRef(e, r);
      const fields = ref.fields.join(", ");
      if (ref.referencedEntity === e.entity) {
        if (ref.nullable) {
          selfReferences.push(plain(ref));
        } else {
          warnings.push({
            code: "self_reference",
            entity: e.entity,
            message:
              `${e.entity} references itself through NOT NULL ${fields} (${ref.reference}); it cannot be deferred, ` +
              `so each row must reference a row with a lower key or a row already present in the target, otherwise it will be rejected`,
            details: plain(ref),
          });
        }
      } else if (!selected.has(ref.referencedEntity)) {
        const missing = known && !known.has(ref.referencedEntity) ? " (not in the source snapshot)" : "";
        warnings.push({
          code: "unselected_reference",
          entity: e.entity,
          message:
            `${e.entity} references unselected ${ref.referencedEntity}${missing} through ${fields} (${ref.reference}); ` +
            `records whose reference points to missing rows may be rejected by the target's foreign key unless those rows exist there`,
          details: { ...plain(ref), inSourceSnapshot: known ? !missing : undefined },
        });
      } else {
        edges.push(ref);
      }
    }
  }

  const deferredEdges = new Set<Ref>();
  const cycles: DependencyPlan["cycles"] = [];
  for (const component of stronglyConnected(names, adjacency(edges))) {
    if (component.length < 2) continue;
    const members = new Set(component);
    const inside = edges.filter((r) => members.has(r.entity) && members.has(r.referencedEntity));
    const resolvedBy = breakCycle(component, inside);
    for (const r of resolvedBy) deferredEdges.add(r);
    cycles.push({ entities: [...component].sort(compare), resolvedBy: resolvedBy.map(plain) });
  }
  cycles.sort((a, b) => compare(a.entities[0]!, b.entities[0]!));

  const kept = edges.filter((r) => !deferredEdges.has(r));
  const deferred = [...[...deferredEdges].map(plain), ...selfReferences].sort(
    (a, b) => compare(a.entity, b.entity) || compare(a.reference, b.reference),
  );
  return { levels: levelsOf(names, kept), deferred, cycles, selfReferences, warnings };
}

/**
 * Sum of the entities' estimated row counts, negative estimates (unknown) counting as 0.
 *
 * @example
 * estimatedTotal([{ ...accounts, estimatedRows: 10 }, { ...contacts, estimatedRows: -1 }]); // 10
 */
export function estimatedTotal(entities: EntitySnapshot[]): number {
  return entities.reduce((sum, e) => sum + Math.max(0, e.estimatedRows), 0);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function toRef(e: EntitySnapshot, r: EntitySnapshot["references"][number]): Ref {
  // A field missing from the snapshot counts as NOT NULL: never defer what we cannot see.
  const nullable = r.fields.every((f) => e.fields.find((x) => x.name === f)?.nullable === true);
  return { ...plain({ ...r, entity: e.entity, reference: r.name }), nullable };
}

function plain({ entity, reference, fields, referencedEntity }: DeferredReference): DeferredReference {
  return { entity, reference, fields: [...fields], referencedEntity };
}

/** child → sorted distinct parents. */
function adjacency(refs: readonly Ref[]): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const r of refs) {
    const set = out.get(r.entity) ?? new Set<string>();
    set.add(r.referencedEntity);
    out.set(r.entity, set);
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort(compare)]));
}

/** Tarjan's strongly connected components, iterative so long chains cannot overflow the stack. */
function stronglyConnected(nodes: readonly string[], next: ReadonlyMap<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const result: string[][] = [];
  const visit = (n: string) => {
    index.set(n, index.size);
    low.set(n, index.get(n)!);
    stack.push(n);
    onStack.add(n);
  };
  for (const root of nodes) {
    if (index.has(root)) continue;
    visit(root);
    const work = [{ node: root, i: 0 }];
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const out = next.get(frame.node) ?? [];
      if (frame.i < out.length) {
        const w = out[frame.i++]!;
        if (!index.has(w)) {
          visit(w);
          work.push({ node: w, i: 0 });
        } else if (onStack.has(w)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== frame.node);
        result.push(component);
      }
    }
  }
  return result;
}

function reaches(from: string, to: string, next: ReadonlyMap<string, string[]>): boolean {
  const seen = new Set([from]);
  const queue = [from];
  while (queue.length > 0) {
    for (const w of next.get(queue.shift()!) ?? []) {
      if (w === to) return true;
      if (seen.has(w)) continue;
      seen.add(w);
      queue.push(w);
    }
  }
  return false;
}

function isAcyclic(nodes: readonly string[], refs: readonly Ref[]): boolean {
  return stronglyConnected(nodes, adjacency(refs)).every((c) => c.length === 1);
}

/**
 * Defers nullable references of one component, in (entity, constraint) order, while they still lie
 * on a cycle; then restores every deferral that turns out unnecessary, so the set is inclusion-minimal.
 */
function breakCycle(component: readonly string[], inside: readonly Ref[]): Ref[] {
  const candidates = inside
    .filter((r) => r.nullable)
    .sort((a, b) => compare(a.entity, b.entity) || compare(a.reference, b.reference));
  const deferred = new Set<Ref>();
  const remaining = () => inside.filter((r) => !deferred.has(r));
  for (const r of candidates) {
    if (reaches(r.referencedEntity, r.entity, adjacency(remaining()))) deferred.add(r);
  }
  if (!isAcyclic(component, remaining())) {
    const cycle = findCycle(component, remaining());
    const path = [...cycle, cycle[0]].join(" → ");
    throw new DrayError(
      "failed_precondition",
      `cannot order entities: cycle ${path} has no nullable reference to defer; ` +
        `make one of its reference fields nullable or leave one entity out`,
      { details: { reason: "unresolvable_cycle", cycle } },
    );
  }
  for (const r of [...deferred].reverse()) {
    deferred.delete(r);
    if (!isAcyclic(component, remaining())) deferred.add(r);
  }
  return candidates.filter((r) => deferred.has(r));
}

/** A shortest cycle through the smallest entity of the first remaining cyclic component, in reference order. */
function findCycle(nodes: readonly string[], refs: readonly Ref[]): string[] {
  const next = adjacency(refs);
  const start = stronglyConnected(nodes, next)
    .filter((c) => c.length > 1)
    .map((c) => [...c].sort(compare)[0]!)
    .sort(compare)[0]!;
  const from = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const n = queue.shift()!;
    for (const w of next.get(n) ?? []) {
      if (w === start) {
        const cycle = [n];
        while (cycle[0] !== start) cycle.unshift(from.get(cycle[0]!)!);
        return cycle;
      }
      if (from.has(w)) continue;
      from.set(w, n);
      queue.push(w);
    }
  }
  return [start];
}

/** Longest-path levels over an acyclic graph (Kahn): an entity sits one level below its deepest parent. */
function levelsOf(names: readonly string[], refs: readonly Ref[]): string[][] {
  const parents = adjacency(refs);
  const children = new Map<string, string[]>();
  const pending = new Map<string, number>();
  for (const n of names) pending.set(n, parents.get(n)?.length ?? 0);
  for (const [child, ps] of parents) for (const p of ps) children.set(p, [...(children.get(p) ?? []), child]);
  const levels: string[][] = [];
  let current = names.filter((n) => pending.get(n) === 0);
  while (current.length > 0) {
    levels.push([...current].sort(compare));
    const following: string[] = [];
    for (const n of current) {
      for (const c of children.get(n) ?? []) {
        const left = pending.get(c)! - 1;
        pending.set(c, left);
        if (left === 0) following.push(c);
      }
    }
    current = following;
  }
  return levels;
}
