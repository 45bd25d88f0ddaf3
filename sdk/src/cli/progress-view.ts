import { count } from "./output.js";

/** One entity's progress as the CLI shows it. */
export interface EntityProgress {
  entity: string;
  total: number;
  processed: number;
  skipped?: number;
  failed?: number;
  /** `pending`, `in_progress`, `completed`, `failed`, `cancelled`; inferred from the counts when absent. */
  status?: string;
}

/** Colours a frame may use; identity functions when colour is off. */
export interface FrameColours {
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  blue(s: string): string;
  grey(s: string): string;
}

const PLAIN: FrameColours = { green: id, red: id, yellow: id, blue: id, grey: id };

function id(s: string): string {
  return s;
}

/** The state word and colour of each entity state. */
const STATE: Record<string, { word: string; colour: keyof FrameColours }> = {
  pending: { word: "waiting", colour: "grey" },
  in_progress: { word: "copying", colour: "blue" },
  completed: { word: "done", colour: "green" },
  failed: { word: "failed", colour: "red" },
  cancelled: { word: "stopped", colour: "yellow" },
};

/** The state of an entity: its own, or inferred from its counts. */
export function entityState(e: EntityProgress): string {
  if (e.status && STATE[e.status]) return e.status;
  if (e.processed === 0) return "pending";
  return e.total > 0 && e.processed >= e.total ? "completed" : "in_progress";
}

/** The fraction done, 0–1; a completed entity is full whatever its estimate said. */
function fractionOf(e: EntityProgress): number {
  if (entityState(e) === "completed") return 1;
  if (e.total > 0) return Math.min(1, e.processed / e.total);
  return 0;
}

/** Cuts `text` to `width` characters, ending in "…" when cut. */
function fit(text: string, width: number): string {
  if (width <= 0) return "";
  if (text.length <= width) return text;
  return width === 1 ? "…" : `${text.slice(0, width - 1)}…`;
}

/**
 * The progress frame: one line per entity (state, name, bar, counts, percent) and a
 * last line with the rate and ETA. Pure, so it is tested without a terminal. Every line is
 * at most `columns - 1` characters wide (the last column would wrap on some terminals): the
 * bar shrinks first, then the name is cut, then the counts go, so the lines never wrap at
 * 40–200 columns.
 *
 * @example
 * progressFrame([{ entity: "public.accounts", total: 100, processed: 50 }], { rate: 25, eta: 2, columns: 80 })
 */
export function progressFrame(
  entities: readonly EntityProgress[],
  options: {
    rate: number;
    eta: number | null;
    columns: number;
    colours?: FrameColours;
    /** What the rate counts, per second ("" when `formatCount` names the unit). @default "records" */
    unit?: string;
    /** How counts are written. @default count (1,234,567) */
    formatCount?: (n: number) => string;
    /** Other words for the states, e.g. `{ in_progress: "sending" }`. */
    stateWords?: Partial<Record<string, string>>;
  },
): string[] {
  const c = options.colours ?? PLAIN;
  const format = options.formatCount ?? count;
  const unit = options.unit ?? "records";
  const room = Math.max(20, options.columns) - 1;
  const stateWidth = 7;
  const rows = entities.map((e) => {
    const state = entityState(e);
    const fraction = fractionOf(e);
    const total = state === "completed" ? Math.max(e.total, e.processed) : e.total;
    const extra = (e.skipped ?? 0) + (e.failed ?? 0) > 0 ? ` ${count(e.skipped)}s/${count(e.failed)}f` : "";
    return {
      e,
      state,
      fraction,
      counts: `${format(e.processed)}/${format(total)}`,
      percent: `${String(Math.floor(fraction * 100)).padStart(3)}%`,
      extra,
    };
  });
  const countsWidth = Math.max(0, ...rows.map((r) => r.counts.length + r.extra.length));
  const nameWidth = Math.max(6, ...entities.map((e) => e.entity.length));
  const lines = rows.map((r) => {
    const known = STATE[r.state] ?? { word: r.state, colour: "grey" as const };
    const style = { ...known, word: options.stateWords?.[r.state] ?? known.word };
    // Fixed parts: state, percent and the spaces between the parts.
    let counts = (r.counts + r.extra).padStart(countsWidth);
    const fixed = stateWidth + 1 + 1 + r.percent.length;
    let name = nameWidth;
    let bar = room - fixed - name - 2 - counts.length - 1;
    if (bar < 10) {
      // Cut the name down to 12 before giving up the bar.
      const give = Math.min(name - Math.min(name, 12), 10 - bar);
      name -= give;
      bar += give;
    }
    if (bar < 6) {
      counts = "";
      bar = room - fixed - name - 1;
    }
    if (bar < 6) {
      bar = Math.max(4, bar);
      name = Math.max(4, room - fixed - bar - 1);
    }
    const filled = Math.round(r.fraction * bar);
    const barText = `${"█".repeat(filled)}${"░".repeat(bar - filled)}`;
    const parts = [
      c[style.colour](style.word.padEnd(stateWidth)),
      fit(r.e.entity, name).padEnd(name),
      c[style.colour](barText),
      ...(counts ? [counts] : []),
      r.percent,
    ];
    return parts.join(" ");
  });
  const eta = options.eta === null ? "—" : `${options.eta}s`;
  lines.push(c.grey(fit(`${format(Math.round(options.rate))}${unit ? ` ${unit}` : ""}/s  ETA ${eta}`, room)));
  return lines;
}
