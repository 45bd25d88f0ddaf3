/**
 * @module connectors/postgres
 * The PostgreSQL connector of the Dray agent, and its COPY text helpers.
 */
export { APPLICATION_NAME, SESSION_SETTINGS } from "./connection-options.js";
export {
  CopyTextBuilder,
  checkCopyLine,
  decodeCopyField,
  formatCopyLine,
  parseCopyLine,
  splitCopyLines,
} from "./copy-text.js";
export { isDataError, sqlStateOf, toDrayError } from "./error-mapping.js";
export { quoteIdentifier, validateIdentifier } from "./identifiers.js";
export { LEDGER_TABLE } from "./ledger.js";
export { createPostgresConnector, type PostgresConnectorOptions } from "./postgres-connector.js";
export type { ReadMethod } from "./read-batch.js";
