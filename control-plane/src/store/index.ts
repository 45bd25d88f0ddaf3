/** The control plane's store: tables, opening/migrating, ids and raw-SQL helpers. */
export { isUuid, newId } from "./ids.js";
export { type Db, MIGRATIONS_FOLDER, type OpenStoreOptions, openStore, type Store } from "./open-store.js";
export { isUniqueViolation, rowsOf, sqlStateOf } from "./raw-sql.js";
export * from "./schema.js";
