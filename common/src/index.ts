/**
 * @module @dray/common
 * What every Dray process shares: the error type and code set, the logger
 * interface, backoff and abort helpers, entity names, data-quality rules and
 * their compiler.
 */
export { abortReason, linkedAbortController, settleWithin, sleep, throwIfAborted } from "./abort.js";
export { type BackoffOptions, backoffDelay } from "./backoff.js";
export { DrayError, type DrayErrorOptions, isDrayError } from "./dray-error.js";
export {
  type EntityNameParts,
  formatEntityName,
  formatEntityNamePart,
  MAX_ENTITY_NAME_LENGTH,
  MAX_ENTITY_PART_LENGTH,
  normaliseEntityName,
  parseEntityName,
  partNeedsQuotes,
} from "./entity-name.js";
export {
  codeOfGrpcStatus,
  ERROR_CODES,
  type ErrorCode,
  grpcStatusOf,
  HIDDEN_ERROR_CODES,
  httpStatusOf,
} from "./error-codes.js";
export {
  createPinoLogger,
  type LogFields,
  type Logger,
  type PinoLoggerOptions,
  silentLogger,
} from "./logger.js";
export { compileQualityRule, type QualityCheck } from "./quality/compile-rule.js";
export * from "./quality-rules.js";
export * from "./transformers.js";
export { DRAY_VERSION } from "./version.js";
