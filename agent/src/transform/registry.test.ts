import { DrayError, TRANSFORMERS } from "@dray/common";
import { describe, expect, it } from "vitest";
import { createPrf } from "./prf.js";
import {
  compileTransform,
  memoizeTransform,
  registerTransformer,
  TRANSFORMER_REGISTRY,
  validateTransformOptions,
} from "./registry.js";
import "./simple.js";
import "./regexp.js";
import "./noise.js";

const prf = createPrf(Buffer.alloc(32, 3));

function errorOf(fn: () => unknown): DrayError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DrayError);
    return error as DrayError;
  }
  throw new Error("expected an error");
}

describe("validateTransformOptions", () => {
  it("refuses an unknown transformer", () => {
    const e = errorOf(() => validateTransformOptions("rot13", {}));
    expect(e.code).toBe("invalid_argument");
    expect(e.message).toContain("rot13");
  });

  it("refuses unknown, missing and ill-typed options, naming transformer and option", () => {
    const cases: [string, unknown, RegExp][] = [
      ["mask", { keep: 2 }, /mask: unknown option keep; it takes keepFirst, keepLast, char/],
      ["null", { x: 1 }, /null: unknown option x; it takes no options/],
      ["constant", {}, /constant: option value is required/],
      ["mask", { keepLast: "4" }, /mask: option keepLast must be an integer, got a string/],
      ["mask", { keepLast: 1.5 }, /mask: option keepLast must be an integer/],
      ["noise_number", { percent: Number.NaN }, /noise_number: option percent must be a finite number/],
      ["choice", { values: ["a", 1] }, /choice: option values must be a list of strings/],
      ["choice", { values: "a" }, /choice: option values must be a list of strings/],
      ["regexp_replace", { pattern: "a" }, /regexp_replace: option replacement is required/],
      ["hash", [], /hash: options must be an object/],
      [
        "json_path",
        { path: "$.a", transformer: { name: "nope" } },
        /json_path: option transformer: unknown transformer/,
      ],
      ["json_path", { path: "$.a", transformer: "email" }, /json_path: option transformer must be an object/],
      [
        "array_each",
        { transformer: { name: "mask", options: { keepLast: "x" } } },
        /array_each: option transformer: transformer mask: option keepLast must be an integer/,
      ],
    ];
    for (const [name, options, message] of cases) {
      const e = errorOf(() => validateTransformOptions(name, options));
      expect(e.code).toBe("invalid_argument");
      expect(e.message).toMatch(message);
    }
  });

  it("runs the implementation's own checks without a key", () => {
    expect(() => validateTransformOptions("hash", { length: 8 })).toThrow(
      /hash: option length must be between 16/,
    );
    expect(() => validateTransformOptions("hash", { encoding: "base64" })).toThrow(/hex or base32/);
    expect(() => validateTransformOptions("choice", { values: [] })).toThrow(/at least one value/);
    expect(() => validateTransformOptions("noise_date", { days: 0 })).toThrow(/days must be between 1/);
    expect(() => validateTransformOptions("regexp_replace", { pattern: "(?=a)", replacement: "" })).toThrow(
      /lookahead/,
    );
  });

  it("accepts valid options and treats undefined as none", () => {
    expect(validateTransformOptions("null", undefined)).toEqual({});
    expect(validateTransformOptions("mask", { keepFirst: 1, keepLast: 2, char: "#" })).toEqual({
      keepFirst: 1,
      keepLast: 2,
      char: "#",
    });
    expect(() =>
      validateTransformOptions("json_path", {
        path: "$.a",
        transformer: { name: "hash", options: { length: 20 } },
      }),
    ).not.toThrow();
  });
});

describe("compileTransform", () => {
  it("returns the value function of a registered transformer", () => {
    expect(compileTransform("constant", { value: "x" }, prf, "text")("Ada")).toBe("x");
    expect(compileTransform("null", {}, prf, "integer")("1")).toBeNull();
  });

  it("refuses a transformer that does not fit the column type", () => {
    expect(() => compileTransform("mask", {}, prf, "integer")).toThrow(
      /mask does not fit a column of type integer; it fits text/,
    );
    expect(() => compileTransform("noise_date", { days: 3 }, prf, "character varying(20)")).toThrow(
      /does not fit/,
    );
  });

  it("says when a catalogue transformer is not registered", () => {
    // This file imports no module that registers template.
    expect(TRANSFORMER_REGISTRY.has("template")).toBe(false);
    const e = errorOf(() => compileTransform("template", { template: "{a}" }, prf, "text"));
    expect(e.code).toBe("unimplemented");
  });

  it("registers only catalogue names, once", () => {
    expect(() => registerTransformer("rot13", () => (v) => v)).toThrow(/not in the catalogue/);
    expect(() => registerTransformer("hash", () => (v) => v)).toThrow(/registered twice/);
  });
});

describe("memoizeTransform", () => {
  it("returns the same outputs, calls once per cached value, and stays bounded", () => {
    let calls = 0;
    const fn = memoizeTransform((v) => {
      calls++;
      return v === "n" ? null : `${v}!`;
    }, 3);
    expect([fn("a"), fn("a"), fn("n"), fn("n"), fn("b")]).toEqual(["a!", "a!", null, null, "b!"]);
    expect(calls).toBe(3);
    fn("c"); // the cache was full: emptied, then holds c
    fn("a");
    expect(calls).toBe(5);
  });
});

describe("the catalogue examples", () => {
  it("hold for the keyless transformers and keep the shape of the keyed ones", () => {
    const byName = new Map(TRANSFORMERS.map((t) => [t.name, t]));
    const example = (name: string) => {
      const info = byName.get(name);
      if (info === undefined) throw new Error(name);
      const type = name === "noise_date" ? "date" : name === "noise_number" ? "numeric(8,2)" : "text";
      return { out: compileTransform(name, info.example.options, prf, type)(info.example.input), info };
    };
    for (const name of ["constant", "mask", "regexp_replace"]) {
      const { out, info } = example(name);
      expect(out).toBe(info.example.output);
    }
    expect(example("null").out).toBeNull();
    for (const name of ["hash", "char_scramble", "noise_date", "noise_number"]) {
      const { out, info } = example(name);
      const shape = (s: string) =>
        s
          .replace(/[0-9a-f]/g, "x")
          .replace(/[A-Z]/g, "X")
          .replace(/\d/g, "9");
      expect(shape(out as string)).toBe(shape(info.example.output));
    }
    expect(["red", "green", "blue"]).toContain(example("choice").out);
  });
});
