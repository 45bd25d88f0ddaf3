import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  CHOSEN_TOKEN_LABEL,
  displayPrefixOf,
  generateApiToken,
  generateEnrollmentToken,
  hashToken,
  isGeneratedApiToken,
  randomBase62,
} from "./tokens.js";

describe("token generation", () => {
  it("makes dray_ API tokens and dray_enr_ enrollment tokens of 43 base62 characters", () => {
    expect(generateApiToken()).toMatch(/^dray_[0-9A-Za-z]{43}$/);
    expect(generateEnrollmentToken()).toMatch(/^dray_enr_[0-9A-Za-z]{43}$/);
  });

  it("never repeats", () => {
    const tokens = new Set(Array.from({ length: 2_000 }, generateApiToken));
    expect(tokens.size).toBe(2_000);
  });

  it("draws base62 characters roughly uniformly (no modulo bias)", () => {
    const counts = new Map<string, number>();
    for (const ch of randomBase62(62_000)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(62);
    for (const n of counts.values()) expect(n).toBeGreaterThan(750); // expected 1000 each
  });
});

describe("hashToken", () => {
  it("is SHA-256 in lowercase hex", () => {
    expect(hashToken("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const token = generateApiToken();
    expect(hashToken(token)).toBe(createHash("sha256").update(token).digest("hex"));
  });
});

describe("displayPrefixOf", () => {
  it("keeps the dray_ marker and 4 characters of a generated token", () => {
    const token = generateApiToken();
    expect(displayPrefixOf(token)).toBe(token.slice(0, 9));
    expect(displayPrefixOf(token)).toMatch(/^dray_[0-9A-Za-z]{4}$/);
    expect(isGeneratedApiToken(token)).toBe(true);
  });
  it("keeps nothing of a chosen token, even one that starts with dray_", () => {
    for (const chosen of [
      "an-admin-token-of-my-choosing",
      "dray_my-own-admin-token-chosen",
      `dray_${"a".repeat(42)}!`,
    ]) {
      expect(displayPrefixOf(chosen)).toBe(CHOSEN_TOKEN_LABEL);
      expect(isGeneratedApiToken(chosen)).toBe(false);
    }
  });
});
