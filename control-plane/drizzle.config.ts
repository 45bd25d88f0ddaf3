/**
 * drizzle-kit configuration: `pnpm --filter @dray/control-plane db:generate`
 * writes SQL migrations for src/store/schema.ts into ./drizzle (commit the SQL
 * and meta/). Generation needs no database; migrations run at start-up.
 */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/store/schema.ts",
  out: "./drizzle",
});
