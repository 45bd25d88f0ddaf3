import { DrayError } from "@dray/common";
import { type EntitySnapshot, rowKeyOf } from "../environments/schema-snapshot.js";
import {
  DEFAULT_LOAD_ORDER,
  DEFAULT_TARGET_TRIGGERS,
  type LoadOrder,
  type TargetTriggers,
  type WriteStrategy,
} from "./pipeline-defaults.js";

/**
 * What {@link planDependencies} orders.
 *
 * @example
 * const input: PlanInput = { entities: selected, allEntities: snapshot.entities,
 *   writeStrategy: "merge", targetTriggers: "off", loadOrder: "dependencies" };
 */
export interface PlanInput {
  /** The selected entities, as described by the source snapshot. */
  entities: EntitySnapshot[];
  /** The whole source snapshot, used to tell whether an unselected referenced entity exists at all. */
  allEntities?: EntitySnapshot[];
  /** The pipeline's write strategy: an entity without a row key blocks only `merge`. Default `merge`. */
  writeStrategy?: WriteStrategy;
  /**
   * The pipeline's `targetTriggers`: with `off` (the default) a cycle of NOT NULL
   * references is loaded with some of them postponed (written unchecked, validated
   * after load); with `fire` such a cycle blocks.
   */
  targetTriggers?: TargetTriggers;
  /**
   * The pipeline's `loadOrder`: with `dependencies` (the default) references order
   * the load; with `parallel` (and targetTriggers `off`) every reference between
   * selected entities is postponed, so all entities form one level. `parallel` with
   * targetTriggers `fire` blocks.
   */
  loadOrder?: LoadOrder;
}

/**
 * A reference (foreign key) that is not honoured by the load order. Deferred: pass 1
 * loads the entity with these fields NULL, pass 2 back-fills them once every row
 * exists. Postponed: the rows are written with their values but without the check,
 * which runs once the cycle's entities are loaded.
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
 * const warning: PlanWarning = { code: "no_row_key", entity: "public.logs",
 *   message: "public.logs has no primary key…" };
 */
export interface PlanWarning {
  code: "unselected_reference" | "self_reference" | "no_row_key";
  entity: string;
  message: string;
  details?: unknown;
}

/**
 * A problem that stops a run: a cycle no load order can satisfy (`entity` absent),
 * an entity without a row key copied with `merge`, or loadOrder `parallel` with
 * targetTriggers `fire` (`entity` absent).
 *
 * @example
 * const problem: PlanProblem = { code: "no_row_key", entity: "public.logs", message: "…" };
 */
export interface PlanProblem {
  code: "unresolvable_cycle" | "no_row_key" | "parallel_needs_triggers_off";
  entity?: string;
  message: string;
  details?: unknown;
}

/**
 * How a cycle is loaded: `deferred_references` when deferring nullable references
 * (NULL, then back-filled) breaks it; `checked_after_load` when NOT NULL references
 * had to be postponed too (written unchecked, validated once the cycle is loaded).
 */
export type CycleHandling = "deferred_references" | "checked_after_load";

/** One cycle (strongly connected component of more than one entity) and how it is loaded. */
export interface PlanCycle {
  entities: string[];
  handling: CycleHandling;
  /** Nullable references deferred to break it. */
  resolvedBy: DeferredReference[];
  /** NOT NULL references postponed to break it (empty with `deferred_references`). */
  postponed: DeferredReference[];
}

/**
 * The load order of an execution (DESIGN §5, Plan).
 *
 * @example
 * for (const level of plan.levels) await Promise.all(level.map(loadEntity)); // bounded in practice
 */
export interface DependencyPlan {
  /**
   * Topological levels, level 0 first; a level's entities do not depend on each other; names sorted.
   * Empty when a cycle cannot be resolved (see `blocking`).
   */
  levels: string[][];
  /** Every reference loaded NULL in pass 1 and back-filled in pass 2 (cycle breaks and self-references). */
  deferred: DeferredReference[];
  /**
   * Every reference written without its check and validated once its entities are
   * loaded, with targetTriggers off: NOT NULL references of cycles and NOT NULL self-references,
   * or with loadOrder parallel every reference between selected entities (sorted by entity, then reference).
   */
  postponed: DeferredReference[];
  /** Each resolved cycle and the references deferred or postponed to break it. */
  cycles: PlanCycle[];
  /** Nullable self-references, deferred (also listed in `deferred`). */
  selfReferences: DeferredReference[];
  warnings: PlanWarning[];
  /**
   * What stops a run, every problem at once: loadOrder parallel with targetTriggers fire,
   * unresolvable cycles, then entities without a row key.
   */
  blocking: PlanProblem[];
}

interface Ref extends DeferredReference {
  nullable: boolean;
  /** Every field nullable and the entity has a row key to back-fill by: it can be loaded NULL. */
  deferrable: boolean;
}

/**
 * Orders the selected entities so that referenced entities load before the entities referencing them.
 * Cycles are broken by deferring nullable references; when those do not suffice and
 * `targetTriggers` is `off`, by postponing a minimal set of NOT NULL references too.
 * Nullable self-references are deferred; NOT NULL ones are postponed (`off`) or warned about (`fire`).
 * With `loadOrder` `parallel` and `targetTriggers` `off`, every reference between selected
 * entities (self-references included) is postponed instead: one level, nothing deferred, no
 * cycles; `parallel` with `fire` adds a blocking problem and plans as `dependencies`.
 * Pure and deterministic: the same entities in any order give the same plan. Problems that
 * stop a run are all returned in `blocking`, never thrown.
 *
 * @throws DrayError `invalid_argument` when nothing is selected.
 * @example
 * const plan = planDependencies({ entities: [accounts, contacts] });
 * // plan.levels → [["public.accounts"], ["public.contacts"]]
 */
export function planDependencies(input: PlanInput): DependencyPlan {
  if (input.entities.length === 0) throw new DrayError("invalid_argument", "select at least one entity");
  const strategy = input.writeStrategy ?? "merge";
  const triggers = input.targetTriggers ?? DEFAULT_TARGET_TRIGGERS;
  const loadOrder = input.loadOrder ?? DEFAULT_LOAD_ORDER;
  // Parallel: every reference between selected entities is checked after load, none orders it.
  const parallel = loadOrder === "parallel" && triggers === "off";
  const parallelBlocked: PlanProblem[] =
    loadOrder === "parallel" && triggers === "fire" ? [parallelNeedsTriggersOff()] : [];
  const selected = new Map<string, EntitySnapshot>();
  for (const e of [...input.entities].sort((a, b) => compare(a.entity, b.entity))) {
    if (!selected.has(e.entity)) selected.set(e.entity, e);
  }
  const known = input.allEntities ? new Set(input.allEntities.map((e) => e.entity)) : undefined;
  const names = [...selected.keys()];
  const warnings: PlanWarning[] = [];
  const keyless: PlanProblem[] = [];
  const selfReferences: DeferredReference[] = [];
  const postponedSelf: DeferredReference[] = [];
  const postponedAll: DeferredReference[] = [];
  const edges: Ref[] = [];

  for (const e of selected.values()) {
    const keyed = rowKeyOf(e).length > 0;
    if (!keyed) {
      if (strategy === "merge") keyless.push(noRowKeyProblem(e.entity));
      else warnings.push(noRowKeyWarning(e.entity, strategy));
    }
    for (const r of [...e.references].sort((a, b) => compare(a.name, b.name))) {
      const ref = toRef(e, r, keyed);
      const fields = ref.fields.join(", ");
      if (parallel && selected.has(ref.referencedEntity)) {
        postponedAll.push(plain(ref));
      } else if (ref.referencedEntity === e.entity) {
        if (ref.deferrable) {
          selfReferences.push(plain(ref));
        } else if (triggers === "off") {
          postponedSelf.push(plain(ref));
        } else {
          const why = keyed ? `NOT NULL ${fields}` : `${fields}, and it has no row key to back-fill by`;
          warnings.push({
            code: "self_reference",
            entity: e.entity,
            message:
              `${e.entity} references itself through ${why} (${ref.reference}); with targetTriggers "fire" it cannot ` +
              `be deferred, so each row must reference a row with a lower key or a row already present in the target, ` +
              `otherwise it will be rejected; with targetTriggers "off" (the default) the reference is checked after load`,
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

  const removed = new Set<Ref>();
  const cycles: PlanCycle[] = [];
  const unresolved: PlanProblem[] = [];
  for (const component of stronglyConnected(names, adjacency(edges))) {
    if (component.length < 2) continue;
    const members = new Set(component);
    const inside = edges.filter((r) => members.has(r.entity) && members.has(r.referencedEntity));
    const broken = breakCycle(component, inside, triggers === "off");
    if (broken.unresolved.length > 0) {
      unresolved.push(...broken.unresolved.map((cycle) => unresolvableCycle(cycle, inside, broken.deferred)));
      continue;
    }
    for (const r of [...broken.deferred, ...broken.postponed]) removed.add(r);
    cycles.push({
      entities: [...component].sort(compare),
      handling: broken.postponed.length > 0 ? "checked_after_load" : "deferred_references",
      resolvedBy: broken.deferred.map(plain),
      postponed: broken.postponed.map(plain),
    });
  }
  cycles.sort((a, b) => compare(a.entities[0]!, b.entities[0]!));
  unresolved.sort((a, b) => compare(cycleKey(a), cycleKey(b)));

  const byName = (a: DeferredReference, b: DeferredReference) =>
    compare(a.entity, b.entity) || compare(a.reference, b.reference);
  const kept = edges.filter((r) => !removed.has(r));
  const deferred = [...cycles.flatMap((c) => c.resolvedBy), ...selfReferences].sort(byName);
  const postponed = [...cycles.flatMap((c) => c.postponed), ...postponedSelf, ...postponedAll].sort(byName);
  return {
    levels: unresolved.length > 0 ? [] : levelsOf(names, kept),
    deferred,
    postponed,
    cycles,
    selfReferences,
    warnings,
    blocking: [...parallelBlocked, ...unresolved, ...keyless],
  };
}

function parallelNeedsTriggersOff(): PlanProblem {
  return {
    code: "parallel_needs_triggers_off",
    message:
      `loadOrder "parallel" needs targetTriggers "off": with the target's triggers firing the database checks ` +
      `each reference as its row is written, so a table cannot load before the tables it references. Set the ` +
      `pipeline's targetTriggers to "off" (the agent then checks every reference once all tables are loaded), ` +
      `or its loadOrder to "dependencies"`,
    details: { loadOrder: "parallel", targetTriggers: "fire" },
  };
}

function noRowKeyProblem(entity: string): PlanProblem {
  return {
    code: "no_row_key",
    entity,
    message:
      `${entity} has no primary key and no unique key of NOT NULL fields, so writeStrategy merge cannot match ` +
      `its rows in the target: add a primary key or a unique key of NOT NULL fields to ${entity}, or copy it ` +
      `with writeStrategy clean or insert`,
    details: { writeStrategy: "merge" },
  };
}

function noRowKeyWarning(entity: string, strategy: WriteStrategy): PlanWarning {
  return {
    code: "no_row_key",
    entity,
    message:
      `${entity} has no primary key and no unique key of NOT NULL fields: it is read in one consistent snapshot ` +
      `in physical order, and a re-run cannot match the rows it copied before` +
      (strategy === "insert" ? " (insert adds them again)" : " (clean deletes them first)"),
    details: { writeStrategy: strategy },
  };
}

/** The blocking problem of a cycle left after deferring every nullable reference it can (targetTriggers fire). */
function unresolvableCycle(cycle: string[], inside: readonly Ref[], deferred: readonly Ref[]): PlanProblem {
  const path = [...cycle, cycle[0]].join(" → ");
  const left = cycle.flatMap((from, i) => {
    const to = cycle[(i + 1) % cycle.length];
    return inside
      .filter((r) => r.entity === from && r.referencedEntity === to && !deferred.includes(r))
      .sort((a, b) => compare(a.reference, b.reference));
  });
  const references = left.map((r) => r.reference);
  const why = left.every((r) => !r.nullable)
    ? "are all NOT NULL"
    : "cannot be deferred (NOT NULL, or of an entity without a row key to back-fill by)";
  return {
    code: "unresolvable_cycle",
    message:
      `cannot order entities: the references of cycle ${path} (${references.join(", ")}) ${why}, so no load ` +
      `order satisfies them while the target's triggers fire: set the pipeline's targetTriggers to "off" ` +
      `(the default), which loads the cycle and checks those references once its tables are loaded, or make ` +
      `one of those reference fields nullable, or leave one entity out`,
    details: { reason: "unresolvable_cycle", cycle, references },
  };
}

function cycleKey(p: PlanProblem): string {
  return ((p.details as { cycle?: string[] } | undefined)?.cycle ?? [])[0] ?? "";
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

function toRef(e: EntitySnapshot, r: EntitySnapshot["references"][number], keyed: boolean): Ref {
  // A field missing from the snapshot counts as NOT NULL: never defer what we cannot see.
  const nullable = r.fields.every((f) => e.fields.find((x) => x.name === f)?.nullable === true);
  // Pass 2 back-fills by the row key: an entity without one cannot have a reference deferred.
  return { ...plain({ ...r, entity: e.entity, reference: r.name }), nullable, deferrable: nullable && keyed };
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
 * Breaks the cycles of one component. Defers deferrable (nullable) references, in
 * (entity, constraint) order, while they still lie on a cycle. When cycles remain and
 * `postpone` is set, postpones NOT NULL references the same way; otherwise returns a
 * shortest cycle of each remaining cyclic part in `unresolved`. Then restores every
 * postponement, then every deferral, that turns out unnecessary, so the set is
 * inclusion-minimal and uses nullable references wherever they suffice.
 */
function breakCycle(
  component: readonly string[],
  inside: readonly Ref[],
  postpone: boolean,
): { deferred: Ref[]; postponed: Ref[]; unresolved: string[][] } {
  const sorted = [...inside].sort((a, b) => compare(a.entity, b.entity) || compare(a.reference, b.reference));
  const removed = new Set<Ref>();
  const remaining = () => inside.filter((r) => !removed.has(r));
  const removeOnCycles = (candidates: readonly Ref[]) => {
    for (const r of candidates) {
      if (reaches(r.referencedEntity, r.entity, adjacency(remaining()))) removed.add(r);
    }
  };
  const deferrable = sorted.filter((r) => r.deferrable);
  const notNull = sorted.filter((r) => !r.deferrable);
  removeOnCycles(deferrable);
  if (!isAcyclic(component, remaining())) {
    if (!postpone) {
      const deferred = deferrable.filter((r) => removed.has(r));
      return { deferred, postponed: [], unresolved: cyclesLeft(component, remaining()) };
    }
    removeOnCycles(notNull);
  }
  const chosen = (refs: readonly Ref[]) => refs.filter((x) => removed.has(x)).reverse();
  for (const r of [...chosen(notNull), ...chosen(deferrable)]) {
    removed.delete(r);
    if (!isAcyclic(component, remaining())) removed.add(r);
  }
  return {
    deferred: deferrable.filter((r) => removed.has(r)),
    postponed: notNull.filter((r) => removed.has(r)),
    unresolved: [],
  };
}

/** One shortest cycle per cyclic part left, each through its smallest entity, in reference order. */
function cyclesLeft(nodes: readonly string[], refs: readonly Ref[]): string[][] {
  const next = adjacency(refs);
  return stronglyConnected(nodes, next)
    .filter((c) => c.length > 1)
    .map((c) => [...c].sort(compare)[0]!)
    .sort(compare)
    .map((start) => shortestCycle(start, next));
}

/** A shortest cycle from `start` back to it (breadth first, neighbours in name order). */
function shortestCycle(start: string, next: ReadonlyMap<string, string[]>): string[] {
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
