import { readFile } from "node:fs/promises";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import type { CreatePipeline } from "../../client.js";
import { DrayApiError } from "../../errors.js";
import { collect } from "../../pages.js";
import type { CommandContext } from "../command-context.js";
import { confirm } from "../confirm.js";
import { UsageError } from "../exit-codes.js";
import { count, table } from "../output.js";
import {
  type EnvironmentNames,
  pipelineDefinition,
  type QualityRuleView,
  qualityRuleLine,
  rulesSection,
  transformationLine,
} from "../pipeline-format.js";
import { resolveEnvironment, resolvePipeline } from "../resolve.js";

/** How `dray pipeline plan` names where a row estimate comes from. */
const ESTIMATE_LABELS: Record<string, string> = {
  statistics: "planner statistics",
  exact: "exact count",
  sampled: "sampled estimate",
  unknown: "no estimate",
};

/** How `dray pipeline plan` says how a cycle is loaded. */
const CYCLE_HANDLING: Record<string, string> = {
  deferred_references: "nullable references loaded NULL, then back-filled",
  checked_after_load: "NOT NULL references written unchecked, then validated once its tables are loaded",
};

/** How `dray pipeline plan` names an entity kind other than a plain table. */
const KIND_LABELS: Record<string, string> = {
  partitioned: "partitioned table",
  inheritance_parent: "inheritance parent (copied without its children)",
};

/** Reads a pipeline definition from JSON or YAML; environments may be given by name. */
async function readDefinition(ctx: CommandContext, file: string): Promise<CreatePipeline> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let body: Record<string, unknown>;
  try {
    body = (/\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text)) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(
      `${file} is not valid ${/\.ya?ml$/i.test(file) ? "YAML" : "JSON"}: ${(error as Error).message}`,
    );
  }
  if (!body || typeof body !== "object") throw new UsageError(`${file} must hold an object`);
  for (const [key, byName] of [
    ["sourceEnvironmentId", "source"],
    ["targetEnvironmentId", "target"],
  ] as const) {
    if (!body[key] && typeof body[byName] === "string") {
      body[key] = (await resolveEnvironment(ctx.client, body[byName] as string)).id;
      delete body[byName];
    }
  }
  return body as unknown as CreatePipeline;
}

const UUID_LIKE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The names of the environments of `p`; one the token may not read (403, 404) stays unnamed. */
async function environmentNames(
  ctx: CommandContext,
  p: { sourceEnvironmentId: string | null; targetEnvironmentId: string },
): Promise<EnvironmentNames> {
  // A name that looks like an id would be read back as one: such an environment stays by id.
  const nameOf = async (id: string | null) =>
    id === null
      ? undefined
      : ctx.client.environments.get(id).then(
          (e) => (UUID_LIKE.test(e.name) ? undefined : e.name),
          (error: unknown) => {
            if (error instanceof DrayApiError && (error.status === 403 || error.status === 404))
              return undefined;
            throw error;
          },
        );
  const [source, target] = await Promise.all([nameOf(p.sourceEnvironmentId), nameOf(p.targetEnvironmentId)]);
  return { source, target };
}

const USAGE = "usage: dray pipeline list|create|show|export|plan|preview|delete";

/** `dray pipeline list|create|show|export|plan|preview|delete`. */
export async function pipelineCommand(ctx: CommandContext, [sub, ...rest]: string[]): Promise<number> {
  const { client, out } = ctx;
  const need = (usage: string) => {
    if (!rest[0]) throw new UsageError(`usage: dray pipeline ${usage}`);
    return rest[0];
  };
  switch (sub) {
    case "list": {
      const pipelines = await collect(client.pipelines.listAll());
      if (out.json) {
        out.data(pipelines);
        return 0;
      }
      if (pipelines.length === 0) {
        out.line("no pipelines yet: `dray pipeline create <file.yaml>`");
        return 0;
      }
      out.line(
        table([
          ["NAME", "STRATEGY", "ENTITIES", "LAST RUN", "ID"],
          ...pipelines.map((p) => [
            p.name,
            p.writeStrategy,
            String(p.entities.length),
            p.running ? out.color.blue("running") : (p.lastExecution?.status ?? "never"),
            p.id,
          ]),
        ]),
      );
      return 0;
    }
    case "create": {
      const created = await client.pipelines.create(
        await readDefinition(ctx, need("create <file.json|yaml>")),
      );
      if (out.json) {
        out.data(created);
        return 0;
      }
      out.line(
        `created pipeline ${out.color.bold(created.name)} (${created.id}); try \`dray pipeline plan ${created.name}\``,
      );
      return 0;
    }
    case "show": {
      const p = await resolvePipeline(client, need("show <pipeline>"));
      if (out.json) {
        out.data(p);
        return 0;
      }
      out.line(`${out.color.bold(p.name)}  ${p.id}`);
      out.line(
        `  ${p.action} with ${p.writeStrategy}, ${p.entities.length} entities, batches of ${count(p.batchSize)} rows`,
      );
      out.line(`  entities: ${p.entities.join(", ")}`);
      out.line(`  retries per batch: ${p.maxRetriesPerBatch}, stop on error: ${p.stopOnError}`);
      out.line(`  target triggers: ${p.targetTriggers}, load order: ${p.loadOrder}`);
      out.line(
        `  last run: ${p.lastExecution ? `${p.lastExecution.status} (${p.lastExecution.pipelineToken})` : "never"}`,
      );
      for (const line of rulesSection(p)) out.line(line);
      return 0;
    }
    case "export": {
      const p = await resolvePipeline(client, need("export <pipeline>"));
      const definition = pipelineDefinition(p, await environmentNames(ctx, p));
      if (out.json) out.data(definition);
      else out.stdout.write(stringifyYaml(definition, { lineWidth: 0 }));
      return 0;
    }
    case "plan": {
      const p = await resolvePipeline(client, need("plan <pipeline>"));
      const plan = await client.pipelines.plan(p.id);
      if (out.json) {
        out.data(plan);
        return 0;
      }
      out.line(`target triggers ${plan.targetTriggersNote}`);
      out.line(`load order ${plan.loadOrderNote}`);
      for (const [i, level] of plan.levels.entries()) out.line(`level ${i}: ${level.join(", ")}`);
      for (const c of plan.cycles)
        out.line(`cycle ${c.entities.join(" ⇄ ")}: ${CYCLE_HANDLING[c.handling] ?? c.handling}`);
      for (const d of plan.deferred)
        out.line(out.color.yellow(`deferred: ${d.entity}.${d.fields.join(",")} → back-filled after load`));
      for (const d of plan.postponed)
        out.line(
          out.color.yellow(
            `postponed: ${d.entity}.${d.fields.join(",")} (${d.reference}) → checked after load`,
          ),
        );
      for (const w of plan.warnings) out.line(out.color.yellow(`warning: ${w.message}`));
      for (const b of plan.blocking) out.line(out.color.red(`blocking: ${b.message}`));
      for (const e of plan.entities) {
        const key = e.rowKey.length > 0 ? `key ${e.rowKey.join(", ")}` : "no row key";
        const kind = e.kind === "table" ? "" : `, ${KIND_LABELS[e.kind] ?? e.kind}`;
        out.line(
          `  ${e.entity}: ${count(e.estimatedRows)} rows (${ESTIMATE_LABELS[e.estimateSource]}), ${key}${kind}`,
        );
      }
      const transformed = plan.entities.flatMap((e) =>
        (e.transformations ?? []).map((t) => ({ ...t, entity: e.entity })),
      );
      if (transformed.length > 0) {
        out.line("transformed while read:");
        for (const t of transformed) out.line(`  ${transformationLine(t)}`);
      }
      const checked = plan.entities.flatMap((e) =>
        ((e as { qualityRules?: Omit<QualityRuleView, "entity">[] }).qualityRules ?? []).map((r) => ({
          ...r,
          entity: e.entity,
        })),
      );
      if (checked.length > 0) {
        out.line("checked while read (failing rows are skipped):");
        for (const r of checked) out.line(`  ${qualityRuleLine(r)}`);
      }
      const limit = plan.monthlyRecordLimit;
      out.line(
        `about ${count(plan.estimatedRecords)} records; ${count(limit.remaining)} of ${count(limit.limit)} left this month` +
          (limit.wouldExceed ? out.color.red(" — this run would exceed the limit") : ""),
      );
      return plan.blocking.length > 0 ? 1 : 0;
    }
    case "preview": {
      const p = await resolvePipeline(client, need("preview <pipeline>"));
      const preview = await client.pipelines.preview(p.id);
      if (out.json) {
        out.data(preview);
        return 0;
      }
      if (preview.entities.length === 0) out.line("no entity of this pipeline has transformations");
      for (const e of preview.entities) {
        out.line(out.color.bold(`${e.entity} (${e.rows.length} rows, transformed fields only)`));
        out.line(table([e.fields, ...e.rows.map((r) => r.map((v) => (v === null ? "NULL" : v)))]));
      }
      for (const w of preview.warnings) out.line(out.color.yellow(`warning: ${w.message}`));
      return 0;
    }
    case "delete": {
      const p = await resolvePipeline(client, need("delete <pipeline>"));
      const go = await confirm({
        yes: Boolean(ctx.flags.yes),
        what: `deleting pipeline ${p.name} removes its definition and its run history; the data already copied stays in the target`,
        question: `Delete pipeline ${p.name}?`,
        retry: `dray pipeline delete ${p.name} --yes`,
      });
      if (!go) {
        out.error("not deleted");
        return 2;
      }
      await client.pipelines.delete(p.id);
      if (out.json) {
        out.data({ deleted: p.id });
        return 0;
      }
      out.line(`deleted pipeline ${p.name}`);
      return 0;
    }
    default:
      throw new UsageError(USAGE);
  }
}
