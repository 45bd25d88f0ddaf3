import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hashToken } from "../auth/tokens.js";
import { newAgentCredential, parseAgentCredential, secretMatches } from "./agent-credentials.js";

describe("agent credentials", () => {
  it("round-trips a credential through the authorization header", () => {
    const id = randomUUID();
    const { credential, hash } = newAgentCredential(id);
    const parsed = parseAgentCredential(`Bearer ${credential}`);
    expect(parsed?.agentId).toBe(id);
    expect(secretMatches(parsed!.secret, hash)).toBe(true);
    expect(hash).not.toContain(parsed!.secret);
  });
  it("rejects malformed headers and wrong secrets", () => {
    expect(parseAgentCredential(undefined)).toBeUndefined();
    expect(parseAgentCredential("Bearer nope")).toBeUndefined();
    expect(parseAgentCredential(`Basic ${randomUUID()}.abcdefghijklmnopqrstuvwxyz`)).toBeUndefined();
    expect(secretMatches("wrong-secret-wrong-secret", hashToken("right-secret-right-secret"))).toBe(false);
  });
});
