/**
 * Who may do what. `system` is the system admin (no organisation); inside an
 * organisation, `viewer` < `operator` < `admin`.
 */
import { DrayError } from "@dray/common";

/** Roles a token of an organisation can have. */
export const ORGANISATION_ROLES = ["admin", "operator", "viewer"] as const;
export type OrganisationRole = (typeof ORGANISATION_ROLES)[number];
/** Every role, including the system admin's. */
export type Role = "system" | OrganisationRole;

/** The authenticated caller of a request. `organisationId` is null only for `system`. */
export interface Principal {
  tokenId: string;
  role: Role;
  organisationId: string | null;
}

const RANK: Record<OrganisationRole, number> = { viewer: 1, operator: 2, admin: 3 };

/** True when `role` includes everything `needed` may do (organisation roles only). */
export function roleSatisfies(role: OrganisationRole, needed: OrganisationRole): boolean {
  return RANK[role] >= RANK[needed];
}

/**
 * The caller's organisation when it holds `needed` (or a higher role) in it.
 * Throws `permission_denied` for a system token (it has no organisation) or a
 * lower role, naming the role needed.
 *
 * @example
 * const organisationId = requireOrganisationRole(principal, "operator");
 */
export function requireOrganisationRole(principal: Principal, needed: OrganisationRole): string {
  if (principal.role === "system" || principal.organisationId === null) {
    throw new DrayError(
      "permission_denied",
      "this request acts inside an organisation: use a token of that organisation, not the system-admin token",
    );
  }
  if (!roleSatisfies(principal.role, needed)) {
    throw new DrayError(
      "permission_denied",
      `this request needs the ${needed} role${needed === "admin" ? "" : " or higher"}; the token has the ${principal.role} role`,
      { details: { requiredRole: needed, role: principal.role } },
    );
  }
  return principal.organisationId;
}

/** Throws `permission_denied` unless the caller is the system admin. */
export function requireSystem(principal: Principal): void {
  if (principal.role !== "system") {
    throw new DrayError(
      "permission_denied",
      `this request needs the system role; the token has the ${principal.role} role`,
      {
        details: { requiredRole: "system", role: principal.role },
      },
    );
  }
}
