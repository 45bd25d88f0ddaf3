import type { DrayClient } from "../client.js";
import { collect } from "../pages.js";
import { UsageError } from "./exit-codes.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A pipeline by id or by exact name. */
export async function resolvePipeline(client: DrayClient, ref: string) {
  if (UUID.test(ref)) return client.pipelines.get(ref);
  const pipelines = await collect(client.pipelines.listAll({ search: ref }));
  const match = pipelines.find((p) => p.name === ref);
  if (!match) throw new UsageError(`no pipeline named "${ref}": see \`dray pipeline list\``);
  return match;
}

/** An environment by id or by exact name. */
export async function resolveEnvironment(client: DrayClient, ref: string) {
  if (UUID.test(ref)) return client.environments.get(ref);
  const environments = await collect(client.environments.listAll({ search: ref }));
  const match = environments.find((e) => e.name === ref);
  if (!match) throw new UsageError(`no environment named "${ref}": see \`dray env list\``);
  return match;
}
