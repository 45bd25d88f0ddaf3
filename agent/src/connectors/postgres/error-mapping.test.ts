import { DrayError } from "@dray/common";
import { describe, expect, it } from "vitest";
import { errorDetails, isDataError, sqlStateOf, toDrayError } from "./error-mapping.js";

function pgError(code: string, message = "boom", extra: Record<string, string> = {}): Error {
  return Object.assign(new Error(message), { name: "PostgresError", code, severity: "ERROR", ...extra });
}

function socketError(code: string): Error {
  return Object.assign(new Error(`write ${code} 127.0.0.1:5432`), { code });
}

describe("toDrayError", () => {
  it.each([
    ["08006", "unavailable", true],
    ["08001", "unavailable", true],
    ["40001", "aborted", true],
    ["40P01", "aborted", true],
    ["57P01", "unavailable", true],
    ["57P03", "unavailable", true],
    ["53300", "unavailable", true],
    ["53100", "unavailable", true],
    ["55P03", "aborted", true],
    ["42P01", "not_found", false],
    ["42703", "not_found", false],
    ["3F000", "not_found", false],
    ["22P02", "invalid_argument", false],
    ["22001", "invalid_argument", false],
    ["21000", "invalid_argument", false],
    ["23505", "failed_precondition", false],
    ["23503", "failed_precondition", false],
    ["23502", "failed_precondition", false],
    ["23514", "failed_precondition", false],
    ["42P10", "failed_precondition", false],
    ["28P01", "unauthenticated", false],
    ["28000", "unauthenticated", false],
    ["42501", "permission_denied", false],
    ["42601", "internal", false],
    ["XX000", "internal", false],
  ])("maps SQLSTATE %s to %s (retryable %s)", (code, expected, retryable) => {
    const error = toDrayError(pgError(code));
    expect(error.code).toBe(expected);
    expect(error.retryable).toBe(retryable);
    expect(error.details).toMatchObject({ sqlState: code });
  });

  it.each([
    "ECONNREFUSED",
    "ECONNRESET",
    "CONNECTION_CLOSED",
    "CONNECTION_DESTROYED",
    "CONNECT_TIMEOUT",
    "EPIPE",
  ])("maps connection failure %s to retryable unavailable", (code) => {
    const error = toDrayError(socketError(code));
    expect(error).toMatchObject({ code: "unavailable", retryable: true });
  });

  it("maps a cancel to cancelled only when we aborted", () => {
    const canceled = pgError("57014", "canceling statement due to user request");
    expect(toDrayError(canceled, { aborted: true })).toMatchObject({ code: "cancelled", retryable: false });
    expect(toDrayError(canceled)).toMatchObject({ code: "aborted", retryable: true });
    expect(toDrayError(pgError("57014", "canceling statement due to statement timeout"))).toMatchObject({
      code: "deadline_exceeded",
      retryable: true,
    });
    // Whatever failed while we were cancelling, the caller sees cancelled.
    expect(toDrayError(pgError("23505"), { aborted: true }).code).toBe("cancelled");
  });

  it("passes DrayErrors through and names the operation", () => {
    const own = new DrayError("not_found", "entity x was not found");
    expect(toDrayError(own)).toBe(own);
    expect(toDrayError(pgError("23505", "duplicate key"), { operation: "write public.t" }).message).toBe(
      "write public.t: duplicate key",
    );
    expect(toDrayError(new Error("weird")).code).toBe("internal");
    expect(toDrayError("string").code).toBe("internal");
    expect(toDrayError(socketError("CONNECTION_ENDED"))).toMatchObject({
      code: "failed_precondition",
      retryable: false,
    });
  });
});

describe("helpers", () => {
  it("reads SQLSTATEs only from server errors and postgres.js's own cancel", () => {
    expect(sqlStateOf(pgError("23505"))).toBe("23505");
    expect(sqlStateOf(Object.assign(new Error("canceling"), { code: "57014" }))).toBe("57014");
    expect(sqlStateOf(socketError("EPIPE"))).toBeUndefined();
    expect(sqlStateOf("nope")).toBeUndefined();
  });

  it("knows which errors are the data's fault", () => {
    for (const code of ["22P02", "22001", "23505", "23503", "23502", "23514", "21000"])
      expect(isDataError(code)).toBe(true);
    for (const code of ["40001", "42P01", "57014", "08006", undefined]) expect(isDataError(code)).toBe(false);
  });

  it("extracts structured details", () => {
    const details = errorDetails(
      pgError("23503", "fk", {
        detail: 'Key (parent_id)=(9) is not present in table "p".',
        table_name: "c",
        schema_name: "public",
        constraint_name: "c_parent_id_fkey",
      }),
    );
    expect(details).toEqual({
      sqlState: "23503",
      detail: 'Key (parent_id)=(9) is not present in table "p".',
      table: "c",
      schema: "public",
      constraint: "c_parent_id_fkey",
    });
  });
});
