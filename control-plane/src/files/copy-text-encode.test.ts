import { describe, expect, it } from "vitest";
import { copyLineOf, escapeCopyValue, nulReject } from "./copy-text-encode.js";

describe("escapeCopyValue", () => {
  it("escapes backslash and control characters, refuses NUL", () => {
    expect(escapeCopyValue("plain é")).toBe("plain é");
    expect(escapeCopyValue("a\tb\nc\rd\\e")).toBe("a\\tb\\nc\\rd\\\\e");
    expect(escapeCopyValue("x\0y")).toBeNull();
  });

  it("writes other control characters raw, as COPY TO does", () => {
    expect(escapeCopyValue("\b\f\v")).toBe("\\b\\f\\v");
    expect(escapeCopyValue("a\u0001b")).toBe("a\u0001b");
  });
});

describe("copyLineOf", () => {
  it("joins escaped values with tabs, NULL as \\N, and ends the line", () => {
    expect(copyLineOf(["1", null, undefined, "", "a\tb"])).toBe("1\t\\N\t\\N\t\ta\\tb\n");
  });

  it("gives the index of the first value holding a NUL", () => {
    expect(copyLineOf(["ok", "x\0", "y\0"])).toBe(1);
    expect(nulReject("line 3", "note")).toBe(
      'line 3: the value for field "note" holds a NUL character, which PostgreSQL text cannot store',
    );
  });
});
