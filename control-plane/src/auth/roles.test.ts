import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { bearerTokenOf } from "./authenticate.js";
import { type Principal, requireOrganisationRole, requireSystem, roleSatisfies } from "./roles.js";

const principal = (role: Principal["role"]): Principal => ({
  tokenId: "t",
  role,
  organisationId: role === "system" ? null : "org-1",
});

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return isDrayError(e) ? { code: e.code, message: e.message } : e;
  }
  return undefined;
};

describe("roles", () => {
  it("orders viewer < operator < admin", () => {
    expect(roleSatisfies("admin", "operator")).toBe(true);
    expect(roleSatisfies("operator", "operator")).toBe(true);
    expect(roleSatisfies("viewer", "operator")).toBe(false);
    expect(roleSatisfies("operator", "admin")).toBe(false);
  });

  it("returns the organisation when the role suffices", () => {
    expect(requireOrganisationRole(principal("admin"), "viewer")).toBe("org-1");
  });

  it("denies a lower role, naming the role needed", () => {
    expect(codeOf(() => requireOrganisationRole(principal("viewer"), "operator"))).toEqual({
      code: "permission_denied",
      message: "this request needs the operator role or higher; the token has the viewer role",
    });
    expect(codeOf(() => requireOrganisationRole(principal("operator"), "admin"))).toMatchObject({
      message: "this request needs the admin role; the token has the operator role",
    });
  });

  it("tells the system admin to use an organisation token", () => {
    expect(codeOf(() => requireOrganisationRole(principal("system"), "viewer"))).toMatchObject({
      code: "permission_denied",
      message: expect.stringContaining("use a token of that organisation"),
    });
  });

  it("requireSystem admits only the system role", () => {
    expect(codeOf(() => requireSystem(principal("system")))).toBeUndefined();
    expect(codeOf(() => requireSystem(principal("admin")))).toMatchObject({ code: "permission_denied" });
  });
});

describe("bearerTokenOf", () => {
  it("reads the Bearer scheme only", () => {
    expect(bearerTokenOf("Bearer dray_abc")).toBe("dray_abc");
    expect(bearerTokenOf("bearer  dray_abc ")).toBe("dray_abc");
    expect(bearerTokenOf("Basic dray_abc")).toBeUndefined();
    expect(bearerTokenOf("Bearer")).toBeUndefined();
    expect(bearerTokenOf("Bearer a b")).toBeUndefined();
    expect(bearerTokenOf(undefined)).toBeUndefined();
    // A value too long to be a token is passed on (and then refused as invalid), not scanned.
    expect(bearerTokenOf(`Bearer ${"x".repeat(10_000)}`)).toHaveLength(10_000);
    expect(bearerTokenOf(`Basic ${"x".repeat(10_000)}`)).toBeUndefined();
  });
});
