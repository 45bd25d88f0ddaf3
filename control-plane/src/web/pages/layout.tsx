/** @jsxImportSource hono/jsx */
/**
 * The page frame and small shared pieces of the web UI: header with
 * navigation, status badges in the seed's colours, progress bars, durations
 * that the script keeps ticking, and numbers.
 */
import type { Child, FC } from "hono/jsx";
import type { AssetPaths } from "../web-assets.js";

export type { AssetPaths };

/** Who is signed in, for the header; absent on the sign-in page. */
export interface Viewer {
  role: string;
  organisationName: string;
  csrfToken: string;
}

/** Where the page sits in the navigation. */
export type Section = "pipelines" | "environments" | "usage" | "docs" | "none";

const NAV: { section: Section; href: string; label: string }[] = [
  { section: "pipelines", href: "/pipelines", label: "Pipelines" },
  { section: "environments", href: "/environments", label: "Environments" },
  { section: "usage", href: "/usage", label: "Usage" },
  { section: "docs", href: "/docs", label: "API" },
];

/** A whole page. */
export const Layout: FC<{
  title: string;
  assets: AssetPaths;
  viewer?: Viewer | undefined;
  section?: Section;
  children?: Child;
}> = ({ title, assets, viewer, section = "none", children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{`${title} · Dray`}</title>
      <link rel="icon" href="data:," />
      <link rel="stylesheet" href={assets.stylesheet} />
      <script src={assets.script} defer />
    </head>
    <body>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/pipelines">
          Dray
        </a>
        {viewer ? (
          <>
            <nav aria-label="Main">
              {NAV.map((n) => (
                <a href={n.href} aria-current={n.section === section ? "page" : undefined}>
                  {n.label}
                </a>
              ))}
            </nav>
            <span class="who">
              {viewer.organisationName} · {viewer.role}
            </span>
            <form method="post" action="/sign-out" class="signout">
              <input type="hidden" name="_csrf" value={viewer.csrfToken} />
              <button type="submit" class="secondary">
                Sign out
              </button>
            </form>
          </>
        ) : null}
      </header>
      <main id="main">{children}</main>
    </body>
  </html>
);

const STATUS_WORDS: Record<string, string> = {
  queued: "Queued",
  pending: "Pending",
  in_progress: "In Progress",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
  cancelling: "Cancelling",
  healthy: "Healthy",
  unhealthy: "Unhealthy",
  unknown: "Unknown",
  never: "Never run",
};

/** A status in words, coloured as the seed says (Queued grey, In Progress blue, …). */
export const Badge: FC<{ status: string; id?: string }> = ({ status, id }) => (
  <span class={`badge ${status}`} id={id} data-status={status}>
    {STATUS_WORDS[status] ?? status}
  </span>
);

/** Whole numbers with thousands separators. */
export const count = (n: number): string => Math.round(n).toLocaleString("en-US");

/** A duration as the script shows it ("3 min 07 s"). */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m > 0) return `${m} min ${String(r).padStart(2, "0")} s`;
  return `${r} s`;
}

/** A duration from `since` to `until` (or now, ticking in the browser). */
export const Elapsed: FC<{ since: string | null; until: string | null; now: Date }> = ({
  since,
  until,
  now,
}) => {
  if (!since) return <span>–</span>;
  const end = until ? Date.parse(until) : now.getTime();
  return (
    <span data-since={since} data-until={until ?? undefined}>
      {formatDuration(end - Date.parse(since))}
    </span>
  );
};

/** A date and time in UTC, to the second. */
export const when = (iso: string | null): string => (iso ? `${iso.slice(0, 19).replace("T", " ")} UTC` : "–");

/** A notice box (info, warning or error). */
export const Notice: FC<{ kind?: "info" | "warning" | "error"; children?: Child }> = ({
  kind = "info",
  children,
}) => (
  <div class={`notice ${kind === "info" ? "" : kind}`} role={kind === "error" ? "alert" : "status"}>
    {children}
  </div>
);
