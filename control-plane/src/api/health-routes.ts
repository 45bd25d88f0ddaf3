/** GET /healthz (liveness) and GET /readyz (readiness), unauthenticated. */
import { DrayError } from "@dray/common";
import { sql } from "drizzle-orm";
import { Hono } from "hono";
import type { ApiEnv, RouteDeps } from "./api-env.js";
import { errorResponse } from "./errors.js";

/** Longest a readiness check may take before it counts as failed. */
const READINESS_TIMEOUT_MS = 2_000;

async function check(name: string, probe: () => Promise<boolean>): Promise<[string, boolean]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), READINESS_TIMEOUT_MS);
  });
  try {
    return [name, await Promise.race([probe(), timeout])];
  } catch {
    return [name, false];
  } finally {
    clearTimeout(timer);
  }
}

/** Health routes: `/healthz` always answers 200; `/readyz` 200 when the store and `readiness()` are fine, else 503. */
export function healthRoutes(deps: RouteDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }, 200));
  app.get("/readyz", async (c) => {
    const checks = Object.fromEntries(
      await Promise.all([
        check("store", async () => {
          await deps.db.execute(sql`select 1`);
          return true;
        }),
        check("readiness", deps.readiness ?? (async () => true)),
      ]),
    ) as Record<string, boolean>;
    if (Object.values(checks).every(Boolean)) return c.json({ status: "ready", checks }, 200);
    const failing = Object.keys(checks).filter((k) => !checks[k]);
    deps.logger.warn("not ready", { failing });
    return errorResponse(
      c,
      new DrayError("unavailable", `not ready: ${failing.join(", ")} failing`, { details: { checks } }),
    );
  });
  return app;
}
