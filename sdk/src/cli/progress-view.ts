import { count } from "./output.js";

/** One entity's progress as the CLI shows it. */
export interface EntityProgress {
  entity: string;
  total: number;
  processed: number;
  skipped?: number;
  failed?: number;
}

/**
 * One line per entity: a bar, processed/total, the rate and the ETA. Pure,
 * so it is tested without a terminal.
 *
 * @example
 * progressLines([{ entity: "public.accounts", total: 100, processed: 50 }], { rate: 25, eta: 2, width: 20 })
 */
export function progressLines(
  entities: readonly EntityProgress[],
  options: { rate: number; eta: number | null; width?: number },
): string[] {
  const width = options.width ?? 24;
  const nameWidth = Math.max(6, ...entities.map((e) => e.entity.length));
  const lines = entities.map((e) => {
    const fraction = e.total > 0 ? Math.min(1, e.processed / e.total) : e.processed > 0 ? 1 : 0;
    const filled = Math.round(fraction * width);
    const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
    const extra =
      (e.skipped ?? 0) + (e.failed ?? 0) > 0
        ? `  (${count(e.skipped)} skipped, ${count(e.failed)} failed)`
        : "";
    return `${e.entity.padEnd(nameWidth)}  ${bar}  ${count(e.processed)}/${count(e.total)}  ${String(Math.round(fraction * 100)).padStart(3)}%${extra}`;
  });
  const eta = options.eta === null ? "—" : `${options.eta}s`;
  lines.push(`${"".padEnd(nameWidth)}  ${count(Math.round(options.rate))} records/s  ETA ${eta}`);
  return lines;
}
