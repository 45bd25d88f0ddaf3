/** The organisation's record usage of the current UTC month (GET /usage, docs/architecture.md §4 "Monthly limit"). */
import { readRecordUsage } from "../pipelines/pipeline-plan.js";
import { remainingRecords, utcMonth } from "../pipelines/record-limit.js";
import type { Db } from "../store/db.js";

/** Usage of one month against the monthly record limit. */
export interface UsageView {
  /** `YYYY-MM`, UTC. */
  month: string;
  /** Records committed (created + updated). */
  used: number;
  /** Records reserved by batches in flight. */
  reserved: number;
  limit: number;
  /** max(0, limit − used − reserved). */
  remaining: number;
}

/** The organisation's usage for the UTC month of `now` (zeros when nothing was used yet). */
export async function usageView(db: Db, organisationId: string, now: Date): Promise<UsageView> {
  const month = utcMonth(now);
  const usage = await readRecordUsage(db, organisationId, month);
  return {
    month,
    used: usage.used,
    reserved: usage.reserved,
    limit: usage.limit,
    remaining: remainingRecords(usage),
  };
}
