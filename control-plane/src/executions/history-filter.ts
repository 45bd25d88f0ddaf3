/**
 * Filters of the run history (GET /pipelines/:id/executions): a comma list of
 * statuses and a createdAt range of ISO dates or datetimes. Pure; bad input is
 * an `invalid_argument` DrayError naming the value. Lengths are checked before
 * any pattern, and the patterns are anchored with bounded repetitions (linear).
 */
import { DrayError } from "@dray/common";
import { EXECUTION_STATUSES, type ExecutionStatus } from "./execution-vocabulary.js";

/** Longest accepted `status` filter (every status, comma-separated, fits with room to spare). */
export const MAX_STATUS_FILTER_LENGTH = 200;
/** Longest accepted `from` / `to` value (a datetime with nanoseconds and an offset fits). */
export const MAX_DATE_PARAM_LENGTH = 64;

/** User text for a message: at most 40 characters, then an ellipsis. */
function shown(value: string): string {
  return value.length > 40 ? `${value.slice(0, 40)}…` : value;
}

function tooLong(name: string, max: number): DrayError {
  return new DrayError(
    "invalid_argument",
    `invalid query parameters: ${name}: must be at most ${max} characters`,
    {
      details: { issues: [{ path: name, message: `must be at most ${max} characters` }] },
    },
  );
}

/** A createdAt range: `from` inclusive, `before` exclusive, `until` inclusive. */
export interface CreatedRange {
  from?: Date;
  before?: Date;
  until?: Date;
}

/**
 * The statuses of `status=queued,failed`, deduplicated; undefined when absent or empty.
 *
 * @example
 * parseStatusFilter("failed, cancelled") // ["failed", "cancelled"]
 */
export function parseStatusFilter(value: string | undefined): ExecutionStatus[] | undefined {
  if (value === undefined) return undefined;
  if (value.length > MAX_STATUS_FILTER_LENGTH) throw tooLong("status", MAX_STATUS_FILTER_LENGTH);
  const parts = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) return undefined;
  for (const part of parts) {
    if (!(EXECUTION_STATUSES as readonly string[]).includes(part)) {
      throw new DrayError(
        "invalid_argument",
        `invalid query parameters: status "${shown(part)}" is not one of ${EXECUTION_STATUSES.join(", ")}`,
        { details: { issues: [{ path: "status", message: `unknown status "${shown(part)}"` }] } },
      );
    }
  }
  return [...new Set(parts as ExecutionStatus[])];
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/i;
const DAY_MS = 86_400_000;

function validCalendarDate(y: string, m: string, d: string): boolean {
  const date = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
  return (
    date.getUTCFullYear() === Number(y) &&
    date.getUTCMonth() === Number(m) - 1 &&
    date.getUTCDate() === Number(d)
  );
}

function badDate(name: string, value: string): DrayError {
  return new DrayError(
    "invalid_argument",
    `invalid query parameters: ${name} "${shown(value)}" is not an ISO date (2026-05-01) or datetime (2026-05-01T12:00:00Z)`,
    { details: { issues: [{ path: name, message: "not an ISO date or datetime" }] } },
  );
}

/**
 * A date (`2026-05-01`, UTC midnight; `dateOnly` true) or datetime (UTC unless
 * it carries an offset).
 */
export function parseDateParam(name: string, value: string): { at: Date; dateOnly: boolean } {
  if (value.length > MAX_DATE_PARAM_LENGTH) throw tooLong(name, MAX_DATE_PARAM_LENGTH);
  const trimmed = value.trim();
  const date = DATE.exec(trimmed);
  if (date) {
    if (!validCalendarDate(date[1]!, date[2]!, date[3]!)) throw badDate(name, value);
    return { at: new Date(`${trimmed}T00:00:00Z`), dateOnly: true };
  }
  const datetime = DATETIME.exec(trimmed);
  if (!datetime || !validCalendarDate(datetime[1]!, datetime[2]!, datetime[3]!)) throw badDate(name, value);
  const at = new Date(datetime[6] ? trimmed : `${trimmed}Z`);
  if (Number.isNaN(at.getTime())) throw badDate(name, value);
  return { at, dateOnly: false };
}

/**
 * The createdAt range of `from` / `to`: `from` inclusive; `to` inclusive, of
 * the whole day when it is a date only.
 *
 * @example
 * parseCreatedRange("2026-05-01", "2026-05-01") // { from: 05-01T00:00Z, before: 05-02T00:00Z }
 */
export function parseCreatedRange(from: string | undefined, to: string | undefined): CreatedRange {
  const range: CreatedRange = {};
  if (from !== undefined && from.trim() !== "") range.from = parseDateParam("from", from).at;
  if (to !== undefined && to.trim() !== "") {
    const parsed = parseDateParam("to", to);
    if (parsed.dateOnly) range.before = new Date(parsed.at.getTime() + DAY_MS);
    else range.until = parsed.at;
  }
  const end = range.before ?? range.until;
  if (range.from && end && (range.before ? end <= range.from : end < range.from)) {
    throw new DrayError(
      "invalid_argument",
      `invalid query parameters: from "${shown(from ?? "")}" is after to "${shown(to ?? "")}"`,
      {
        details: { issues: [{ path: "from", message: "after to" }] },
      },
    );
  }
  return range;
}
