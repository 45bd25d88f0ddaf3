import { collect } from "../../pages.js";
import type { CommandContext } from "../command-context.js";
import { confirm } from "../confirm.js";
import { UsageError } from "../exit-codes.js";
import { count, table } from "../output.js";
import { resolveEnvironment } from "../resolve.js";

const HEALTH_COLOUR = { healthy: "green", unhealthy: "red", unknown: "grey" } as const;

/** `dray env list|add|test|entities|delete`. */
export async function envCommand(ctx: CommandContext, [sub, ...rest]: string[]): Promise<number> {
  const { client, out } = ctx;
  switch (sub) {
    case "list": {
      const environments = await collect(
        client.environments.listAll(ctx.flags.search ? { search: ctx.flags.search } : {}),
      );
      if (out.json) {
        out.data(environments);
        return 0;
      }
      if (environments.length === 0) {
        out.line("no environments yet: `dray env add <name>`");
        return 0;
      }
      out.line(
        table([
          ["NAME", "HEALTH", "AGENT", "LAST HEARTBEAT", "ID"],
          ...environments.map((e) => [
            e.name,
            out.color[HEALTH_COLOUR[e.health]](e.health),
            e.agent.version ?? "—",
            e.lastHeartbeatAt ?? "never",
            e.id,
          ]),
        ]),
      );
      return 0;
    }
    case "add": {
      const name = rest[0];
      if (!name) throw new UsageError("usage: dray env add <name> [--application A] [--url U] [--protected]");
      const created = await client.environments.create({
        name,
        platform: "postgres",
        ...(ctx.flags.application ? { application: ctx.flags.application } : {}),
        ...(ctx.flags.url ? { url: ctx.flags.url } : {}),
        ...(ctx.flags.protected ? { protected: true } : {}),
      });
      if (out.json) {
        out.data(created);
        return 0;
      }
      out.line(`created environment ${out.color.bold(created.environment.name)} (${created.environment.id})`);
      out.line("start its agent next to the database (the token works once):");
      out.line(
        `  DRAY_CONTROL_PLANE_URL=<gateway> DRAY_ENROLLMENT_TOKEN=${created.enrollmentToken} DRAY_AGENT_DATABASE_URL=postgres://… dray-agent`,
      );
      return 0;
    }
    case "test": {
      if (!rest[0]) throw new UsageError("usage: dray env test <environment>");
      const env = await resolveEnvironment(client, rest[0]);
      const result = await client.environments.test(env.id);
      if (out.json) {
        out.data(result);
        return 0;
      }
      out.line(
        `${out.color.green("ok")}  ${env.name}: round trip ${result.roundTripMs} ms, database ${result.databaseLatencyMs} ms (${result.serverVersion})`,
      );
      return 0;
    }
    case "entities": {
      if (!rest[0]) throw new UsageError("usage: dray env entities <environment> [--refresh]");
      const env = await resolveEnvironment(client, rest[0]);
      const snapshot = await client.environments.entities(env.id, { refresh: Boolean(ctx.flags.refresh) });
      if (out.json) {
        out.data(snapshot);
        return 0;
      }
      out.line(
        table([
          ["ENTITY", "FIELDS", "PRIMARY KEY", "REFERENCES", "ROWS (EST.)"],
          ...snapshot.entities.map((e) => [
            e.entity,
            String(e.fields.length),
            e.primaryKey.join(", ") || out.color.yellow("none"),
            e.references.map((r) => `${r.fields.join(",")} → ${r.referencedEntity}`).join("; ") || "—",
            e.estimatedRows < 0 ? "?" : count(e.estimatedRows),
          ]),
        ]),
      );
      return 0;
    }
    case "delete": {
      if (!rest[0]) throw new UsageError("missing the environment", "dray env delete <environment>");
      const env = await resolveEnvironment(client, rest[0]);
      const go = await confirm({
        yes: Boolean(ctx.flags.yes),
        what: `deleting environment ${env.name}${env.protected ? " (protected)" : ""} unpairs its agent and removes it from Dray; its database is not touched`,
        question: `Delete environment ${env.name}?`,
        retry: `dray env delete ${env.name} --yes`,
      });
      if (!go) {
        out.error("not deleted");
        return 2;
      }
      await client.environments.delete(env.id);
      if (out.json) out.data({ deleted: env.id });
      else out.line(`deleted environment ${env.name}`);
      return 0;
    }
    default:
      throw new UsageError("usage: dray env list|add|test|entities|delete");
  }
}
