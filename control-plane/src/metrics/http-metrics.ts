/**
 * The HTTP middleware that times every API request for the metrics, labelled
 * by the route pattern that answered (`/api/v1/executions/:id`), never the
 * raw path, so ids in paths do not become label values.
 */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Metrics } from "./metrics.js";

/**
 * Times each request and records it with its method, route pattern and status
 * class. A request that no route answered is labelled with the pattern of the
 * middleware that answered it (`/api/v1/*`, `/*`), so the set stays bounded.
 *
 * @example
 * app.use("*", requestMetrics(metrics));
 */
export function requestMetrics(metrics: Pick<Metrics, "observeRequest">): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      metrics.observeRequest(c.req.method, routePath(c), c.res.status, (performance.now() - started) / 1000);
    }
  };
}
