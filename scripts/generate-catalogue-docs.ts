/**
 * Writes docs/transformers.md from the catalogues in @dray/common (the
 * transformers and the data-quality rules), so the reference never drifts
 * from the code: `pnpm gen` runs it and scripts/check-generated.sh checks it.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { QUALITY_RULES, TRANSFORMERS } from "@dray/common";

const KIND_WORDS = {
  bijective: "bijective (distinct values stay distinct; safe on keys)",
  unique: "unique (distinct values stay distinct except with negligible probability; safe on keys)",
  lossy: "lossy (distinct values may become one; refused on keys)",
} as const;

const code = (value: unknown) => `\`${typeof value === "string" ? value : JSON.stringify(value)}\``;
const cell = (text: string) => text.replaceAll("|", "\\|");

/** The options of a transformer or rule as a Markdown list. */
function optionLines(
  options: readonly { name: string; type: string; required: boolean; description: string }[],
) {
  if (options.length === 0) return ["- Options: none."];
  return [
    "- Options:",
    ...options.map(
      (o) => `  - \`${o.name}\` (${o.type}${o.required ? ", required" : ""}): ${o.description}.`,
    ),
  ];
}

const lines: string[] = [
  "# Transformers and data-quality rules",
  "",
  "Generated from `common/src/transformers.ts` and `common/src/quality-rules.ts` by",
  "`scripts/generate-catalogue-docs.ts` (`pnpm gen`); do not edit by hand.",
  "",
  "Transformers run on the source agent and are keyed by its transform key: an output depends on the",
  "key, the transformer and the value only, so the same value maps the same way in every table and",
  "run. The outputs in the examples show the shape; the real ones depend on the key.",
  "",
  "## Transformers",
  "",
];
for (const t of TRANSFORMERS) {
  lines.push(`### \`${t.name}\``, "", t.description, "");
  lines.push(`- Kind: ${KIND_WORDS[t.kind]}.`);
  lines.push(`- Fits: ${t.families.join(", ")} columns.`, ...optionLines(t.options));
  lines.push(
    "",
    "| options | input | output |",
    "| ------- | ----- | ------ |",
    `| ${cell(code(t.example.options))} | ${cell(code(t.example.input))} | ${cell(code(t.example.output))} |`,
    "",
  );
}
lines.push(
  "## Data-quality rules",
  "",
  "Checked on the source agent on every row read, on raw values before any transformation. A row",
  "that fails a rule is not copied; it is reported by its (transformed) key and counted as skipped.",
  "Every rule but `not_null` lets NULL pass.",
  "",
);
for (const r of QUALITY_RULES) {
  lines.push(`### \`${r.name}\``, "", r.description, "");
  lines.push(`- Fits: ${r.families.join(", ")} columns.`, ...optionLines(r.options));
  lines.push(
    "",
    "| options | passes | fails |",
    "| ------- | ------ | ----- |",
    `| ${cell(code(r.example.options))} | ${cell(code(r.example.passes))} | ${cell(code(r.example.fails))} |`,
    "",
  );
}
const root = join(import.meta.dirname, "..");
const out = join(root, "docs", "transformers.md");
writeFileSync(out, `${lines.join("\n").trimEnd()}\n`);
// The repository's formatter aligns the tables, so `biome check` passes on the generated file.
execFileSync(join(root, "node_modules", ".bin", "biome"), ["format", "--write", out], { stdio: "ignore" });
