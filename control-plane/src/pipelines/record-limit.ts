/**
 * Monthly record limit arithmetic (DESIGN §5, Limits). Pure: the plan endpoint
 * and the executor's preflight and batch reservations share it.
 */

/**
 * The UTC calendar month of an instant, as stored in `usage.month`.
 *
 * @example
 * utcMonth(new Date("2026-01-31T23:30:00-05:00")) // "2026-02"
 */
export function utcMonth(date: Date): string {
  const month = String(date.getUTCMonth() + 1).padStart(2, "0");
  return `${String(date.getUTCFullYear()).padStart(4, "0")}-${month}`;
}

/** An organisation's limit and its month's usage so far. */
export interface RecordUsage {
  /** The organisation's monthly record limit. */
  limit: number;
  /** Records committed this month. */
  used: number;
  /** Records reserved by batches in flight. */
  reserved: number;
}

/**
 * Records still available this month: `limit - used - reserved`, never below 0.
 *
 * @example
 * remainingRecords({ limit: 1000, used: 900, reserved: 200 }) // 0
 */
export function remainingRecords(usage: RecordUsage): number {
  return Math.max(0, usage.limit - usage.used - usage.reserved);
}

/** What the plan shows about the monthly record limit. */
export interface RecordLimitStatus extends RecordUsage {
  remaining: number;
  /** `YYYY-MM` (UTC). */
  month: string;
  /** True when `estimated` records do not fit in `remaining`. */
  wouldExceed: boolean;
}

/**
 * The limit status of a run estimated at `estimated` records.
 *
 * @example
 * recordLimitStatus({ limit: 100, used: 40, reserved: 0 }, "2026-05", 70).wouldExceed // true
 */
export function recordLimitStatus(usage: RecordUsage, month: string, estimated: number): RecordLimitStatus {
  const remaining = remainingRecords(usage);
  return {
    limit: usage.limit,
    used: usage.used,
    reserved: usage.reserved,
    remaining,
    month,
    wouldExceed: estimated > remaining,
  };
}

/**
 * How to raise an organisation's monthly record limit, for messages: only the
 * system administrator may (organisation tokens, admin ones included, get 403
 * from that endpoint), so the hint names who and the exact call.
 *
 * @example
 * raiseLimitHint("0b6c…") // "ask the Dray system administrator to raise the limit: …"
 */
export function raiseLimitHint(organisationId: string): string {
  return (
    "ask the Dray system administrator to raise the limit (organisation tokens cannot change it): " +
    `PATCH /api/v1/organisations/${organisationId} with {"monthlyRecordLimit": <records>} ` +
    "and the system-admin token"
  );
}
