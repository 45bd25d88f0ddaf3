/** The cached description of an environment's entities, as stored and as served by the API. */
export interface SchemaSnapshot {
  capturedAt: string;
  fingerprint: string;
  entities: EntitySnapshot[];
}

export interface EntitySnapshot {
  /** `schema.table` */
  entity: string;
  schema: string;
  name: string;
  fields: { name: string; type: string; nullable: boolean; hasDefault: boolean; generated: boolean }[];
  primaryKey: string[];
  references: { name: string; fields: string[]; referencedEntity: string; referencedFields: string[] }[];
  estimatedRows: number;
  /** Where `estimatedRows` comes from (absent in snapshots stored before it existed: statistics). */
  estimateSource?: "statistics" | "exact" | "sampled";
}
