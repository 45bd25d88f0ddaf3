import { describe, expect, it } from "vitest";
import { decodeCopyRows, unchangedWarnings, varcharLength } from "./pipeline-preview.js";

const bytes = (s: string) => Buffer.from(s, "utf8");

describe("decodeCopyRows", () => {
  it("splits rows and fields, decodes NULL and escapes", () => {
    expect(decodeCopyRows(bytes("a\\tb\t\\N\nc\\\\N\t\\101\\x41\\n\n"))).toEqual([
      ["a\tb", null],
      ["c\\N", "AA\n"],
    ]);
  });
  it("keeps empty strings apart from NULL and decodes UTF-8", () => {
    expect(decodeCopyRows(bytes("\t\\N\nZoë\t€\n"))).toEqual([
      ["", null],
      ["Zoë", "€"],
    ]);
    expect(decodeCopyRows(new Uint8Array())).toEqual([]);
  });
});

describe("varcharLength", () => {
  it("reads n of character varying(n) only", () => {
    expect(varcharLength("character varying(40)")).toBe(40);
    expect(varcharLength("character varying")).toBeUndefined();
    expect(varcharLength("text")).toBeUndefined();
    expect(varcharLength("numeric(12,2)")).toBeUndefined();
  });
});

describe("unchangedWarnings", () => {
  const transforms = [
    {
      field: "phone",
      transformer: "regexp_replace",
      options: { pattern: "\\d{4}$", replacement: "XXXX" },
      kind: "lossy" as const,
    },
    { field: "city", transformer: "city", options: {}, kind: "lossy" as const },
  ];

  it("warns when regexp_replace matched none of the previewed values, naming the pattern", () => {
    const warnings = unchangedWarnings({
      entity: "public.contacts",
      transforms,
      stats: [
        { field: "phone", values: 20, unchanged: 20 },
        { field: "city", values: 20, unchanged: 3 },
      ],
    });
    expect(warnings).toEqual([
      {
        code: "transform_unchanged",
        message:
          'regexp_replace on public.contacts.phone matched none of the 20 previewed values, so it changes nothing: check the pattern "\\\\d{4}$" against the field\'s values',
        entity: "public.contacts",
        details: { field: "phone", transformer: "regexp_replace", values: 20 },
      },
    ]);
  });

  it("says nothing when some values changed or none was previewed", () => {
    expect(
      unchangedWarnings({
        entity: "public.contacts",
        transforms,
        stats: [
          { field: "phone", values: 20, unchanged: 19 },
          { field: "city", values: 0, unchanged: 0 },
        ],
      }),
    ).toEqual([]);
  });

  it("warns about any other transformer that changed nothing", () => {
    const [w] = unchangedWarnings({
      entity: "public.contacts",
      transforms,
      stats: [{ field: "city", values: 5, unchanged: 5 }],
    });
    expect(w?.message).toBe(
      "city on public.contacts.city left all 5 previewed values unchanged: check its options",
    );
  });
});
