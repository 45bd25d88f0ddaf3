import { isDrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { StreamSlots } from "./stream-slots.js";

describe("StreamSlots", () => {
  it("caps per token and per organisation and gives slots back once", () => {
    const slots = new StreamSlots({ perToken: 2, perOrganisation: 3 });
    const a1 = slots.take("a", "org");
    slots.take("a", "org");
    expect(() => slots.take("a", "org")).toThrow(/this token already has 2 event streams open/);
    slots.take("b", "org");
    let error: unknown;
    try {
      slots.take("c", "org");
    } catch (e) {
      error = e;
    }
    expect(isDrayError(error) && error.code).toBe("resource_exhausted");
    expect(isDrayError(error) && error.details).toMatchObject({ scope: "organisation", cap: 3 });
    slots.take("c", "other-org");
    a1.release();
    a1.release(); // a second release does not free another slot
    expect([slots.heldByToken("a"), slots.heldByOrganisation("org")]).toEqual([1, 2]);
    slots.take("c", "org");
    expect(() => slots.take("d", "org")).toThrow(/organisation already has 3/);
  });
});
