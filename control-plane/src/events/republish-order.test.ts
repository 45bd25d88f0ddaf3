import { describe, expect, it } from "vitest";
import { inOrderPrefix } from "./republish-order.js";

const k = (executionId: string, seq: number) => ({ executionId, seq });

describe("inOrderPrefix", () => {
  it("keeps claimed events per execution in seq order", () => {
    expect(
      inOrderPrefix(
        [k("a", 3), k("a", 1), k("b", 1), k("a", 2)],
        [k("a", 1), k("a", 2), k("a", 3), k("b", 1)],
      ),
    ).toEqual([k("a", 1), k("a", 2), k("a", 3), k("b", 1)]);
  });

  it("stops an execution at an older unpublished event it did not claim (held by another replica)", () => {
    expect(inOrderPrefix([k("a", 2), k("a", 3)], [k("a", 1), k("a", 2), k("a", 3)])).toEqual([]);
    expect(inOrderPrefix([k("a", 1), k("a", 3)], [k("a", 1), k("a", 2), k("a", 3)])).toEqual([k("a", 1)]);
  });

  it("skips over events published meanwhile (gaps in the unpublished seqs)", () => {
    expect(inOrderPrefix([k("a", 4), k("a", 7)], [k("a", 4), k("a", 7)])).toEqual([k("a", 4), k("a", 7)]);
  });
});
