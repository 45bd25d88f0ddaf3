/** @jsxImportSource hono/jsx */
/**
 * A pipeline's page: Run Pipeline (Start / Stop Pipeline when continuous),
 * its settings (entities, strategy, mode, transformations, quality rules),
 * the plan preview (levels, cycles, warnings, estimate and limit impact) or,
 * for a files pipeline, its files with their states and DROP FILE, and the
 * Run History, filtered by status and date range and paged.
 */
import type { FC } from "hono/jsx";
import type { ExecutionSummary } from "../../executions/execution-lists.js";
import type { PipelineFileView } from "../../files/file-records.js";
import type { PipelinePlan } from "../../pipelines/pipeline-plan.js";
import type { PipelineView } from "../../pipelines/pipeline-view.js";
import {
  type AssetPaths,
  Badge,
  count,
  formatDuration,
  Layout,
  Notice,
  type Viewer,
  when,
} from "./layout.js";
import { RunButton } from "./pipelines-page.js";

/** The history filter as the form holds it. */
export interface HistoryFilter {
  status: string;
  from: string;
  to: string;
}

const STATUSES = [
  ["", "Any status"],
  ["queued", "Queued"],
  ["in_progress", "In Progress"],
  ["completed", "Completed"],
  ["failed", "Failed"],
  ["cancelled", "Cancelled"],
] as const;

const Plan: FC<{ plan: PipelinePlan }> = ({ plan }) => (
  <section aria-labelledby="plan-title">
    <h2 id="plan-title">Plan</h2>
    {plan.blocking.map((b) => (
      <Notice kind="error">{b.message}</Notice>
    ))}
    {plan.warnings.map((w) => (
      <Notice kind="warning">{w.message}</Notice>
    ))}
    <ol>
      {plan.levels.map((level, i) => (
        <li>
          Level {i}: {level.join(", ")}
        </li>
      ))}
    </ol>
    {plan.cycles.length > 0 ? (
      <ul>
        {plan.cycles.map((c) => (
          <li>
            Cycle {c.entities.join(" ⇄ ")}: {c.handling.replaceAll("_", " ")}
          </li>
        ))}
      </ul>
    ) : null}
    <p>
      About <strong>{count(plan.estimatedRecords)}</strong> records;{" "}
      {count(plan.monthlyRecordLimit.remaining)} of {count(plan.monthlyRecordLimit.limit)} left this month
      {plan.monthlyRecordLimit.wouldExceed ? (
        <strong> — this run would exceed the monthly limit</strong>
      ) : null}
      .
    </p>
    <p class="muted">Target triggers {plan.targetTriggersNote}.</p>
    <p class="muted">Load order {plan.loadOrderNote}.</p>
  </section>
);

/** Stop Pipeline (a form posting to /pipelines/:id/stop) while a continuous pipeline runs. */
const StopButton: FC<{ pipeline: PipelineView; viewer: Viewer; canRun: boolean }> = ({
  pipeline,
  viewer,
  canRun,
}) =>
  canRun && pipeline.mode === "continuous" && pipeline.running ? (
    <form method="post" action={`/pipelines/${pipeline.id}/stop`} class="row">
      <input type="hidden" name="_csrf" value={viewer.csrfToken} />
      <button type="submit" class="secondary" title="The batches in flight commit first">
        Stop Pipeline
      </button>
    </form>
  ) : null;

/** A files pipeline's files (seed 03's PIPELINES_FILES), newest first, with DROP FILE. */
const Files: FC<{ pipeline: PipelineView; files: PipelineFileView[]; viewer: Viewer; canRun: boolean }> = ({
  pipeline,
  files,
  viewer,
  canRun,
}) => (
  <section aria-labelledby="files">
    <h2 id="files">Files</h2>
    <p class="muted">
      Upload with <code>dray upload {pipeline.name} FILE…</code> or <code>POST /api/v1/pipeline/upload</code>.
      A file that is Loaded or Skipped is not loaded again unless it is dropped.
    </p>
    {files.length === 0 ? (
      <p class="muted">No files uploaded yet.</p>
    ) : (
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">File</th>
              <th scope="col">State</th>
              <th scope="col">Rows</th>
              <th scope="col">Uploaded</th>
              <th scope="col">Error</th>
              {canRun ? <th scope="col">DROP FILE</th> : null}
            </tr>
          </thead>
          <tbody>
            {files.map((f) => (
              <tr>
                <td>
                  {f.filename} <span class="muted">{f.fileId.slice(0, 12)}</span>
                </td>
                <td>{f.state}</td>
                <td>
                  {count(f.rowsLoaded)}
                  {f.rowsRejected > 0 ? ` (${count(f.rowsRejected)} rejected)` : ""}
                </td>
                <td>{when(f.uploadedAt)}</td>
                <td>{f.error ?? ""}</td>
                {canRun ? (
                  <td>
                    {f.state === "Unloaded" ? (
                      <span class="muted">loading</span>
                    ) : (
                      <form method="post" action={`/pipelines/${pipeline.id}/files/${f.fileId}/drop`}>
                        <input type="hidden" name="_csrf" value={viewer.csrfToken} />
                        <button type="submit" class="secondary" aria-label={`Drop ${f.filename}`}>
                          Drop
                        </button>
                      </form>
                    )}
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    )}
  </section>
);

/** The whole page. */
export const PipelinePage: FC<{
  pipeline: PipelineView;
  sourceName: string;
  targetName: string;
  /** Null for a files pipeline (it has no run plan). */
  plan: PipelinePlan | { error: string } | null;
  /** A files pipeline's files; null otherwise. */
  files?: PipelineFileView[] | null;
  history: ExecutionSummary[];
  historyTotal: number;
  next: string | null;
  filter: HistoryFilter;
  viewer: Viewer;
  assets: AssetPaths;
  canRun: boolean;
  now: Date;
  error?: string | undefined;
}> = (p) => {
  const { pipeline, filter } = p;
  const nextQuery = p.next
    ? `?${new URLSearchParams({ ...filter, cursor: p.next }).toString()}#history`
    : undefined;
  return (
    <Layout title={pipeline.name} assets={p.assets} viewer={p.viewer} section="pipelines">
      <p class="muted">
        <a href="/pipelines">Pipelines</a> / {pipeline.name}
      </p>
      <div class="row">
        <h1>{pipeline.name}</h1>
        <span class="spacer" />
        {pipeline.sourceKind === "files" ? null : (
          <RunButton
            pipeline={pipeline}
            viewer={p.viewer}
            canRun={p.canRun}
            label={pipeline.mode === "continuous" ? "Start Pipeline" : "Run Pipeline"}
          />
        )}
        <StopButton pipeline={pipeline} viewer={p.viewer} canRun={p.canRun} />
      </div>
      {p.error ? <Notice kind="error">{p.error}</Notice> : null}
      <section aria-labelledby="settings-title">
        <h2 id="settings-title">Settings</h2>
        <div class="scroll">
          <table>
            <tbody>
              <tr>
                <th scope="row">Source → target</th>
                <td>
                  {p.sourceName} → {p.targetName}
                </td>
              </tr>
              <tr>
                <th scope="row">Action, write strategy</th>
                <td>
                  {pipeline.action}, {pipeline.writeStrategy}
                </td>
              </tr>
              <tr>
                <th scope="row">Entities</th>
                <td>{pipeline.entities.join(", ")}</td>
              </tr>
              {pipeline.mode === "continuous" ? (
                <tr>
                  <th scope="row">Mode</th>
                  <td>
                    continuous: by {pipeline.cursorField ?? "the row key"}, polling every{" "}
                    {formatDuration(pipeline.batchIntervalMs)} when idle, safety lag{" "}
                    {formatDuration(pipeline.safetyLagMs)}, pauses after {pipeline.maxFailedPolls} failed
                    polls
                  </td>
                </tr>
              ) : null}
              {pipeline.fileSettings ? (
                <tr>
                  <th scope="row">Files</th>
                  <td>
                    {pipeline.fileSettings.format}
                    {pipeline.fileSettings.format === "csv"
                      ? ` (delimiter ${JSON.stringify(pipeline.fileSettings.delimiter ?? ",")}, quote ${JSON.stringify(pipeline.fileSettings.quote ?? '"')})`
                      : ""}
                    {pipeline.fileSettings.fieldMapping
                      ? `, mapping ${Object.entries(pipeline.fileSettings.fieldMapping)
                          .map(([from, to]) => `${from} → ${to}`)
                          .join(", ")}`
                      : ""}
                  </td>
                </tr>
              ) : null}
              <tr>
                <th scope="row">Batches</th>
                <td>
                  {count(pipeline.batchSize)} rows, {pipeline.maxRetriesPerBatch} retries, stop on error:{" "}
                  {pipeline.stopOnError ? "yes" : "no"}
                </td>
              </tr>
              {(pipeline.transformations ?? []).length > 0 ? (
                <tr>
                  <th scope="row">Transformations</th>
                  <td>
                    <ul>
                      {(pipeline.effectiveTransformations ?? pipeline.transformations ?? []).map((t) => (
                        <li>
                          <code>
                            {(t as { entity: string }).entity}.{t.field}
                          </code>{" "}
                          ← {t.transformer}
                          {(t as { propagatedFrom?: string }).propagatedFrom
                            ? ` (follows ${(t as { propagatedFrom?: string }).propagatedFrom})`
                            : ""}
                        </li>
                      ))}
                    </ul>
                  </td>
                </tr>
              ) : null}
              {(pipeline.qualityRules ?? []).length > 0 ? (
                <tr>
                  <th scope="row">Quality rules</th>
                  <td>
                    <ul>
                      {(pipeline.qualityRules ?? []).map((r) => (
                        <li>
                          <code>
                            {r.entity}.{r.field}
                          </code>{" "}
                          must pass {r.rule}{" "}
                          {Object.keys(r.options).length > 0 ? JSON.stringify(r.options) : ""}
                        </li>
                      ))}
                    </ul>
                  </td>
                </tr>
              ) : null}
            </tbody>
          </table>
        </div>
      </section>
      {p.plan === null ? null : "error" in p.plan ? (
        <Notice kind="warning">The plan could not be made: {p.plan.error}</Notice>
      ) : (
        <Plan plan={p.plan} />
      )}
      {p.files ? <Files pipeline={pipeline} files={p.files} viewer={p.viewer} canRun={p.canRun} /> : null}
      <section aria-labelledby="history">
        <h2 id="history">Run History</h2>
        <form method="get" action={`/pipelines/${pipeline.id}#history`} class="row">
          <label>
            Status
            <select name="status">
              {STATUSES.map(([value, label]) => (
                <option value={value} selected={filter.status === value}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <label>
            From
            <input type="date" name="from" value={filter.from} />
          </label>
          <label>
            To
            <input type="date" name="to" value={filter.to} />
          </label>
          <button type="submit" class="secondary">
            Filter
          </button>
        </form>
        <p class="muted">
          {count(p.historyTotal)} {p.historyTotal === 1 ? "run matches" : "runs match"}.
        </p>
        {p.history.length === 0 ? (
          <p class="muted">No runs match.</p>
        ) : (
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Date</th>
                  <th scope="col">Status</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Records</th>
                  <th scope="col">Triggered by</th>
                </tr>
              </thead>
              <tbody>
                {p.history.map((h) => (
                  <tr>
                    <td>
                      <a href={`/executions/${h.id}`}>{when(h.createdAt)}</a>
                    </td>
                    <td>
                      <Badge status={h.status} />
                    </td>
                    <td>{h.durationMs === null ? "–" : formatDuration(h.durationMs)}</td>
                    <td>{count(h.recordsProcessed)}</td>
                    <td>{h.triggeredBy.tokenName}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {nextQuery ? (
          <p>
            <a href={`/pipelines/${pipeline.id}${nextQuery}`} rel="next">
              Older runs
            </a>
          </p>
        ) : null}
      </section>
    </Layout>
  );
};
