/**
 * Who may read /metrics. The counters carry organisation ids and pipeline
 * names, so the endpoint is closed unless the operator sets
 * DRAY_METRICS_TOKEN; Prometheus then scrapes with that bearer token. The
 * token is kept only as its SHA-256 and compared in constant time.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { DrayError } from "@dray/common";

const sha256 = (text: string) => createHash("sha256").update(text).digest();

/**
 * A check of the `Authorization` header of a /metrics request: resolves to
 * nothing when it may read, otherwise returns the error to answer with
 * (`permission_denied` when no token is configured, `unauthenticated` when
 * the header is missing or wrong).
 */
export function metricsAccess(
  token: string | undefined,
): (authorization: string | undefined) => DrayError | undefined {
  const expected = token ? sha256(token) : undefined;
  return (authorization) => {
    if (!expected)
      return new DrayError(
        "permission_denied",
        "/metrics is off: set DRAY_METRICS_TOKEN on the control plane and scrape with Authorization: Bearer <that token>",
      );
    const given = /^Bearer (.+)$/.exec(authorization ?? "")?.[1];
    if (given && timingSafeEqual(sha256(given), expected)) return undefined;
    return new DrayError("unauthenticated", "/metrics needs Authorization: Bearer <DRAY_METRICS_TOKEN>");
  };
}
