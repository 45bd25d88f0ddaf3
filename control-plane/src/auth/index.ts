/** Authentication and authorisation of the control plane's API. */
export {
  type AuthMiddlewareOptions,
  type AuthVariables,
  authenticateRequest,
  clientAddressOf,
  createAuthMiddleware,
  tooManyFailedAuthentications,
} from "./auth-middleware.js";
export { authenticateToken, bearerTokenOf, LAST_USED_RESOLUTION_MS, tokenExpired } from "./authenticate.js";
export {
  createFailedAuthLimiter,
  FAILED_AUTH_DEFAULTS,
  type FailedAuthLimiter,
  type FailedAuthLimiterOptions,
  peerAddress,
  sharedFailedAuthLimiter,
} from "./failed-auth-limiter.js";
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
  CHOSEN_TOKEN_LABEL,
  credentialFingerprint,
  displayPrefixOf,
  ENROLLMENT_TOKEN_PREFIX,
  generateApiToken,
  generateEnrollmentToken,
  hashToken,
  isGeneratedApiToken,
} from "./tokens.js";
