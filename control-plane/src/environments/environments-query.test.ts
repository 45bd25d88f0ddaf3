import { isDrayError } from "@dray/common";
import { sql } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { describe, expect, it } from "vitest";
import {
  ENVIRONMENT_SORTS,
  environmentOrderBy,
  environmentSearchCondition,
  escapeLikePattern,
  parseEnvironmentSort,
} from "./environments-query.js";

const dialect = new PgDialect();

describe("parseEnvironmentSort", () => {
  it("defaults to name and accepts every documented sort", () => {
    expect(parseEnvironmentSort(undefined)).toBe("name");
    expect(parseEnvironmentSort("")).toBe("name");
    for (const sort of ENVIRONMENT_SORTS) expect(parseEnvironmentSort(sort)).toBe(sort);
  });

  it("rejects anything else with invalid_argument listing the valid values", () => {
    for (const bad of ["Name", "size", "name desc", "health;drop"]) {
      try {
        parseEnvironmentSort(bad);
        expect.unreachable();
      } catch (e) {
        expect(isDrayError(e) && e.code).toBe("invalid_argument");
        expect((e as Error).message).toBe(
          `sort must be one of name, health, lastHeartbeat, createdAt (got "${bad}")`,
        );
      }
    }
  });
});

describe("escapeLikePattern", () => {
  it("escapes LIKE wildcards and the escape character", () => {
    expect(escapeLikePattern("50%_off")).toBe("50\\%\\_off");
    expect(escapeLikePattern("a\\b")).toBe("a\\\\b");
    expect(escapeLikePattern("plain text")).toBe("plain text");
  });
});

describe("environmentSearchCondition", () => {
  it("is undefined for an empty or blank search", () => {
    expect(environmentSearchCondition(undefined)).toBeUndefined();
    expect(environmentSearchCondition("   ")).toBeUndefined();
  });

  it("matches name, application and url with one bound, escaped pattern", () => {
    const query = dialect.sqlToQuery(environmentSearchCondition(" 5%_x' or 1=1 ")!);
    expect(query.sql).toBe(
      `("environments"."name" ilike $1 escape '\\' or "environments"."application" ilike $2 escape '\\' or "environments"."url" ilike $3 escape '\\')`,
    );
    expect(query.params).toEqual(Array(3).fill("%5\\%\\_x' or 1=1%"));
  });
});

describe("environmentOrderBy", () => {
  const orderSql = (sort: (typeof ENVIRONMENT_SORTS)[number]) =>
    dialect.sqlToQuery(sql.join(environmentOrderBy(sort), sql`, `)).sql;
  const byName = `lower("environments"."name") collate "C" asc, "environments"."name" collate "C" asc, "environments"."id" asc`;

  it("orders each sort with name and id as tie-breakers", () => {
    expect(orderSql("name")).toBe(byName);
    expect(orderSql("health")).toBe(
      `case "environments"."health" when 'healthy' then 0 when 'unhealthy' then 1 else 2 end asc, ${byName}`,
    );
    expect(orderSql("lastHeartbeat")).toBe(`"environments"."last_heartbeat_at" desc nulls last, ${byName}`);
    expect(orderSql("createdAt")).toBe(`"environments"."created_at" desc, ${byName}`);
  });
});

describe("pathological input", () => {
  it("answers a 1 MiB sort value without echoing it", () => {
    let message = "";
    try {
      parseEnvironmentSort(`${".".repeat(1024 * 1024)}\n`);
    } catch (e) {
      if (isDrayError(e)) message = e.message;
    }
    expect(message).toContain("sort must be one of");
    expect(message.length).toBeLessThan(200);
  });
});
