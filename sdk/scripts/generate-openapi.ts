/**
 * Writes sdk/openapi.json from the control plane's route definitions (no
 * server, no database): `pnpm --filter @dray/sdk gen`. CI checks it for drift.
 */
import { writeFile } from "node:fs/promises";
import { silentLogger } from "@dray/common";
import { createApiApp, OPENAPI_INFO } from "@dray/control-plane/api";

const unused = new Proxy(
  {},
  {
    get: () => {
      throw new Error("not available while generating the OpenAPI document");
    },
  },
);
const app = createApiApp({
  db: unused as never,
  agents: unused as never,
  logger: silentLogger,
  config: { enrollmentTokenTtlMs: 1, defaultMonthlyRecordLimit: 1, heartbeatIntervalMs: 1 },
});
const document = app.getOpenAPI31Document(OPENAPI_INFO);
await writeFile(new URL("../openapi.json", import.meta.url), `${JSON.stringify(document, null, 2)}\n`);
console.log(`wrote openapi.json (${Object.keys(document.paths ?? {}).length} paths)`);
