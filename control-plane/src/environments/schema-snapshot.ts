/** The cached description of an environment's entities, as stored and as served by the API. */
export interface SchemaSnapshot {
  capturedAt: string;
  fingerprint: string;
  entities: EntitySnapshot[];
}

/** Every {@link EntityKind}. */
export const ENTITY_KINDS = ["table", "partitioned", "inheritance_parent"] as const;

/**
 * What kind of table an entity is: a plain `table`; a `partitioned` table (written
 * through it, its partitions are not entities); an `inheritance_parent` (other tables
 * inherit from it; read, counted and cleaned with ONLY).
 */
export type EntityKind = (typeof ENTITY_KINDS)[number];

export interface EntitySnapshot {
  /** `schema.table` */
  entity: string;
  schema: string;
  name: string;
  fields: { name: string; type: string; nullable: boolean; hasDefault: boolean; generated: boolean }[];
  primaryKey: string[];
  /**
   * The fields that identify a row: the primary key, else the unique key whose fields
   * are all NOT NULL; empty when the table has neither. Absent in snapshots stored
   * before it existed: the primary key (see {@link rowKeyOf}).
   */
  rowKey?: string[];
  /** The fields of each unique index (primary key included); absent in older snapshots. */
  uniqueKeys?: string[][];
  /** Absent in snapshots stored before it existed: `table` (see {@link entityKindOf}). */
  kind?: EntityKind;
  references: {
    name: string;
    fields: string[];
    referencedEntity: string;
    referencedFields: string[];
    /**
     * The source database enforces it for every row (declared on the table,
     * validated, triggers on). Absent in older snapshots and from older agents: not known.
     */
    validated?: boolean;
  }[];
  estimatedRows: number;
  /** Where `estimatedRows` comes from (absent in snapshots stored before it existed: statistics). */
  estimateSource?: "statistics" | "exact" | "sampled";
}

/**
 * The entity's row key: `rowKey` when the snapshot has it, else its primary key.
 * Empty when the entity has no key to read in keyset order or to merge on.
 *
 * @example
 * rowKeyOf({ primaryKey: [], rowKey: ["email"] }) // ["email"]
 * rowKeyOf({ primaryKey: ["id"] }) // ["id"]
 */
export function rowKeyOf(entity: Pick<EntitySnapshot, "primaryKey" | "rowKey">): string[] {
  return [...(entity.rowKey ?? entity.primaryKey)];
}

/**
 * The entity's kind: as the snapshot says when it names a known kind, else `table`.
 *
 * @example
 * entityKindOf({ kind: "partitioned" }) // "partitioned"
 * entityKindOf({}) // "table"
 */
export function entityKindOf(entity: Pick<EntitySnapshot, "kind">): EntityKind {
  const kind: unknown = entity.kind;
  return (ENTITY_KINDS as readonly unknown[]).includes(kind) ? (kind as EntityKind) : "table";
}
