import { describe, expect, it } from "vitest";
import "./fakes-register.js";
import { FAKE_FACTORIES } from "./fakes.js";
import { createPrf } from "./prf.js";
import { compileTransform, TRANSFORMER_REGISTRY, validateTransformOptions } from "./registry.js";

const prf = createPrf(new Uint8Array(32).fill(3));
const noResolve = () => {
  throw new Error("unused");
};

describe("fakes-register", () => {
  it("registers every fake, anonymize, json_path and array_each", () => {
    for (const name of [...Object.keys(FAKE_FACTORIES), "json_path", "array_each"])
      expect(TRANSFORMER_REGISTRY.has(name), name).toBe(true);
  });

  it("compiles through the registry to the same outputs as the factories", () => {
    const email = compileTransform("email", { locale: "de" }, prf, "character varying(200)");
    expect(email("ada@lovelace.org")).toBe(
      FAKE_FACTORIES.email!({ locale: "de" }, prf, "text", noResolve)("ada@lovelace.org"),
    );
    expect(compileTransform("anonymize", {}, prf, "integer")("42")).toHaveLength(2);
  });

  it("resolves nested transformers: json_path as text, array_each with the element type", () => {
    const json = compileTransform(
      "json_path",
      { path: "$.a[*]", transformer: { name: "email" } },
      prf,
      "jsonb",
    );
    const email = compileTransform("email", {}, prf, "text");
    expect(JSON.parse(json('{"a":["x@y.z"]}')!)).toEqual({ a: [email("x@y.z")] });
    const ints = compileTransform("array_each", { transformer: { name: "anonymize" } }, prf, "integer[]");
    const anonymizeInt = compileTransform("anonymize", {}, prf, "integer");
    expect(ints("{7,NULL,-2147483648}")).toBe(`{${anonymizeInt("7")},NULL,${anonymizeInt("-2147483648")}}`);
  });

  it("validates options without a key: locale, domain, path", () => {
    expect(() => validateTransformOptions("city", { locale: "es" })).toThrow(/locale must be one of/);
    expect(() => validateTransformOptions("email", { domain: "no spaces.com " })).toThrow(/domain/);
    expect(() =>
      validateTransformOptions("json_path", { path: "$.a[", transformer: { name: "city" } }),
    ).toThrow(/path/);
    expect(validateTransformOptions("phone", { locale: "fr" })).toEqual({ locale: "fr" });
  });
});
