/**
 * The environment variables each Dray process reads, taken from its config module (the single
 * place that reads process.env), so manifests are checked against the code, not a copy of it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** Variable names declared in a config module's env schema (`  DRAY_X: …` lines). */
export function declaredVariables(source: string): Set<string> {
  return new Set([...source.matchAll(/^ {2}(DRAY_[A-Z0-9_]+):/gm)].map((m) => m[1] as string));
}

/** The variables of the control plane and of the agent. */
export function knownVariables(root: string): { controlPlane: Set<string>; agent: Set<string> } {
  const read = (path: string) => declaredVariables(readFileSync(join(root, path), "utf8"));
  return { controlPlane: read("control-plane/src/config.ts"), agent: read("agent/src/config.ts") };
}

/** A problem for each `DRAY_*` name not in `known`. */
export function unknownVariables(where: string, names: Iterable<string>, known: Set<string>): string[] {
  return [...names]
    .filter((n) => n.startsWith("DRAY_") && !known.has(n))
    .map((n) => `${where}: ${n} is not a variable of this process`);
}
