/** Authentication and authorisation of the control plane's API. */
export { type AuthMiddlewareOptions, type AuthVariables, createAuthMiddleware } from "./auth-middleware.js";
export { authenticateToken, bearerTokenOf, LAST_USED_RESOLUTION_MS } from "./authenticate.js";
export {
  ORGANISATION_ROLES,
  type OrganisationRole,
  type Principal,
  type Role,
  requireOrganisationRole,
  requireSystem,
  roleSatisfies,
} from "./roles.js";
export { BOOTSTRAP_TOKEN_NAME, ensureSystemAdminToken, GENERATED_TOKEN_NAME } from "./system-admin-token.js";
export {
  API_TOKEN_PREFIX,
  displayPrefixOf,
  ENROLLMENT_TOKEN_PREFIX,
  generateApiToken,
  generateEnrollmentToken,
  hashToken,
} from "./tokens.js";
