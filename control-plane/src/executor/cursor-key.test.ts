import { describe, expect, it } from "vitest";
import { decodeCopyRows } from "./copy-text-rows.js";
import { cursorKeyOf } from "./cursor-key.js";

describe("cursorKeyOf", () => {
  it("reads by the cursor field, then the row key", () => {
    expect(cursorKeyOf("updated_at", ["id"])).toEqual(["updated_at", "id"]);
    expect(cursorKeyOf("updated_at", ["tenant", "id"])).toEqual(["updated_at", "tenant", "id"]);
  });
  it("is the row key without a cursor field, or when the cursor is the key's first field", () => {
    expect(cursorKeyOf(null, ["id"])).toEqual(["id"]);
    expect(cursorKeyOf("id", ["id"])).toEqual(["id"]);
  });
  it("does not repeat a cursor field that is part of the key", () => {
    expect(cursorKeyOf("version", ["id", "version"])).toEqual(["version", "id"]);
  });
});

describe("decodeCopyRows", () => {
  it("splits lines and fields and undoes COPY escapes", () => {
    const text = "1\ta\\tb\n2\tc\\\\d\\ne\n";
    expect(decodeCopyRows(new TextEncoder().encode(text))).toEqual([
      ["1", "a\tb"],
      ["2", "c\\d\ne"],
    ]);
  });
});
