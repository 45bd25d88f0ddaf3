import { describe, expect, it } from "vitest";
import { topLevelMembers } from "./json-object-members.js";

describe("topLevelMembers", () => {
  it("gives keys and value source texts in order, numbers as written, nested values as their text", () => {
    const text = ' { "a" : 1.50 , "b":{"c":[1,"}"]},"d\\"e":"x\\ny", "f":null,"g":true} ';
    expect(topLevelMembers(text)).toEqual([
      ["a", "1.50"],
      ["b", '{"c":[1,"}"]}'],
      ['d"e', '"x\\ny"'],
      ["f", "null"],
      ["g", "true"],
    ]);
  });

  it("gives nothing for an empty object", () => {
    expect(topLevelMembers("{}")).toEqual([]);
    expect(topLevelMembers("{ }")).toEqual([]);
  });
});
