/** Environments: store access, search/sort, enrollment tokens and agent-backed checks. */
export { type ConnectionTestResult, testEnvironmentConnection } from "./connection-test.js";
export { type IssuedEnrollmentToken, issueEnrollmentToken } from "./enrollment.js";
export { cachedSnapshotOf, getEntitySnapshot } from "./entity-snapshots.js";
export { type EnvironmentView, toEnvironmentView } from "./environment-view.js";
export {
  ENVIRONMENT_SORTS,
  type EnvironmentSort,
  environmentOrderBy,
  environmentSearchCondition,
  escapeLikePattern,
  parseEnvironmentSort,
} from "./environments-query.js";
export {
  type CreateEnvironmentInput,
  createEnvironment,
  deleteEnvironment,
  type EnvironmentRow,
  environmentNotFound,
  findEnvironment,
  getEnvironment,
  listEnvironments,
  renewEnrollmentToken,
  type UpdateEnvironmentInput,
  updateEnvironment,
} from "./environments-service.js";
export type { EntitySnapshot, SchemaSnapshot } from "./schema-snapshot.js";
