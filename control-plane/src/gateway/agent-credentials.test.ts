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
  it("rejects agent ids that are not UUIDs before they reach the store", () => {
    const secret = "abcdefghijklmnopqrstuvwxyz";
    for (const agentId of ["-".repeat(36), "0".repeat(36), "x", "", `${randomUUID()}x`, "g".repeat(36)]) {
      expect(parseAgentCredential(`Bearer ${agentId}.${secret}`)).toBeUndefined();
    }
    expect(parseAgentCredential("Bearer x.y")).toBeUndefined();
    expect(parseAgentCredential(`Bearer ${randomUUID()}.short`)).toBeUndefined();
    expect(parseAgentCredential(`Bearer ${randomUUID()}.${"a".repeat(129)}`)).toBeUndefined();
    expect(parseAgentCredential(`Bearer ${randomUUID()}.${"a".repeat(30)}\u0000`)).toBeUndefined();
    expect(parseAgentCredential(`Bearer ${randomUUID()}.${".".repeat(100_000)}`)).toBeUndefined();
  });
});
