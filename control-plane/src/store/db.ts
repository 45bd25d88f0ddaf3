import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type { schema } from "./schema.js";

/** The drizzle database, whichever driver backs it (postgres.js or PGlite). */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;
