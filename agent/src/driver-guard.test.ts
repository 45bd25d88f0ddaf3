import { silentLogger } from "@dray/common";
import { describe, expect, it } from "vitest";
import {
  isConnectionFailure,
  isDriverLostSocketError,
  isDriverTypeFetchFailure,
} from "./connectors/postgres/error-mapping.js";
import { installDriverGuard, triage } from "./driver-guard.js";

/** The error postgres.js 3.4.9 throws from nextWrite on a closed connection, as Node reports it. */
function nullSocketWrite(): TypeError {
  const error = new TypeError("Cannot read properties of null (reading 'write')");
  error.stack = `${error.message}\n    at Immediate.nextWrite (file:///app/node_modules/.pnpm/postgres@3.4.9/node_modules/postgres/src/connection.js:255:22)\n    at process.processImmediate (node:internal/timers:483:21)`;
  return error;
}

/** The rejection of postgres.js's unawaited array-type lookup when its new connection dies. */
function typeFetchOnClosedConnection(): Error {
  return Object.assign(new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), {
    code: "CONNECTION_CLOSED",
    query:
      "\n      select b.oid, b.typarray\n      from pg_catalog.pg_type a\n      left join pg_catalog.pg_type b on b.oid = a.typelem\n",
  });
}

describe("the driver guard", () => {
  it("tolerates the driver's unawaited type lookup on a connection that died, and nothing like it", () => {
    expect(isDriverTypeFetchFailure(typeFetchOnClosedConnection())).toBe(true);
    expect(triage(typeFetchOnClosedConnection())).toBe("ignore");
    const ours = Object.assign(new Error("write CONNECTION_CLOSED"), {
      code: "CONNECTION_CLOSED",
      query: "select 1",
    });
    expect(triage(ours)).toBe("exit");
    const syntax = Object.assign(typeFetchOnClosedConnection(), { code: "42601" });
    expect(triage(syntax)).toBe("exit");
  });

  it("recognises only the driver's write to a closed socket", () => {
    expect(isDriverLostSocketError(nullSocketWrite())).toBe(true);
    expect(isConnectionFailure(nullSocketWrite())).toBe(true);
    expect(triage(nullSocketWrite())).toBe("ignore");
    // The same message from our own code, or another error from the driver, is not it.
    expect(triage(new TypeError("Cannot read properties of null (reading 'write')"))).toBe("exit");
    const other = new TypeError("Cannot read properties of undefined (reading 'replace')");
    other.stack = `${other.message}\n    at queryError (/x/node_modules/postgres/src/connection.js:392:48)`;
    expect(triage(other)).toBe("exit");
    expect(triage(new Error("boom"))).toBe("exit");
    expect(triage("a string")).toBe("exit");
  });

  it("keeps the process alive for the driver's error and exits for anything else", () => {
    const exits: number[] = [];
    const remove = installDriverGuard(silentLogger, (code) => exits.push(code));
    try {
      const listeners = process.listeners("uncaughtException");
      const guard = listeners[listeners.length - 1] as (error: unknown) => void;
      guard(nullSocketWrite());
      expect(exits).toEqual([]);
      const rejection = process.listeners("unhandledRejection");
      (rejection[rejection.length - 1] as (error: unknown) => void)(nullSocketWrite());
      expect(exits).toEqual([]);
      const stderr = process.stderr.write;
      process.stderr.write = (() => true) as typeof process.stderr.write;
      try {
        guard(new Error("a real bug"));
      } finally {
        process.stderr.write = stderr;
      }
      expect(exits).toEqual([1]);
    } finally {
      remove();
    }
  });
});
