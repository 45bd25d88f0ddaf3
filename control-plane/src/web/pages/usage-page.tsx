/** @jsxImportSource hono/jsx */
/** The Usage page: this month's records used against the organisation's limit. */
import type { FC } from "hono/jsx";
import { type AssetPaths, count, Layout, type Viewer } from "./layout.js";

/** The page. */
export const UsagePage: FC<{
  usage: { month: string; limit: number; used: number; reserved: number; remaining: number };
  viewer: Viewer;
  assets: AssetPaths;
}> = ({ usage, viewer, assets }) => {
  const percent = usage.limit > 0 ? Math.min(100, Math.round((usage.used / usage.limit) * 100)) : 0;
  return (
    <Layout title="Usage" assets={assets} viewer={viewer} section="usage">
      <h1>Usage</h1>
      <p>
        {usage.month}: <strong>{count(usage.used)}</strong> of {count(usage.limit)} records used,{" "}
        {count(usage.reserved)} reserved by runs in flight, {count(usage.remaining)} left.
      </p>
      <div
        class="bar"
        role="progressbar"
        aria-label="Records used this month"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
      >
        <span class={`w${percent}`} />
      </div>
    </Layout>
  );
};
