import type { TestProject } from "vitest/node";
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    natsUrl: string;
  }
}

/**
 * Hands the real Postgres and NATS to every test file. Dray's tests always run
 * against real services: set TEST_DATABASE_URL and TEST_NATS_URL (`.ci/run`
 * does), or have Docker so testcontainers can start them.
 */
export default async function setup(project: TestProject): Promise<void | (() => Promise<void>)> {
  const databaseUrl = process.env.TEST_DATABASE_URL;
  const natsUrl = process.env.TEST_NATS_URL;
  if (databaseUrl && natsUrl) {
    project.provide("databaseUrl", databaseUrl);
    project.provide("natsUrl", natsUrl);
    return;
  }
  throw new Error(
    "Dray's tests need a real Postgres and NATS. Set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) " +
      "and TEST_NATS_URL (e.g. nats://127.0.0.1:4222), or run `bash .ci/run`, which starts both and sets them.",
  );
}
