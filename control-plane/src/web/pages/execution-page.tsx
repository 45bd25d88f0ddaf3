/** @jsxImportSource hono/jsx */
/**
 * The Execution Monitor: an execution's overall status, a progress bar per
 * entity, duration, throughput and ETA, the failure reason and a live error
 * log. The live section (#live) is also served alone, for the script to swap
 * in on every event of the run's stream.
 */
import type { FC } from "hono/jsx";
import type { ExecutionView } from "../../executions/execution-view.js";
import { type ExecutionStatus, FINAL_STATUSES } from "../../executions/execution-vocabulary.js";
import { type AssetPaths, Badge, count, Elapsed, Layout, Notice, type Viewer, when } from "./layout.js";

/** An error-log line of the monitor. */
export interface MonitorError {
  at: string;
  severity: "error" | "warning";
  entity: string | null;
  recordKey: string[] | null;
  message: string;
}

/** What the monitor shows. */
export interface MonitorData {
  execution: ExecutionView;
  /** When each entity started and finished, by entity. */
  entityTimes: Map<string, { startedAt: string | null; finishedAt: string | null }>;
  /** The newest errors, newest first. */
  errors: MonitorError[];
  errorTotal: number;
  /** Continuous executions: the newest stage entries of its polls and stops, newest first. */
  passes?: { at: string; description: string }[];
}

/** True once the execution has its final status. */
export const isFinal = (status: string): boolean => FINAL_STATUSES.has(status as ExecutionStatus);

/** The overall status as shown: Cancelling while a requested cancel is under way. */
export function shownStatus(e: Pick<ExecutionView, "status" | "cancelRequested">): string {
  return e.cancelRequested && !isFinal(e.status) ? "cancelling" : e.status;
}

/** Seconds left at the current throughput, or null when it cannot be told. */
function etaMs(e: ExecutionView): number | null {
  if (isFinal(e.status) || e.throughput <= 0) return null;
  const left = Math.max(0, e.totals.total - e.totals.processed);
  return (left / e.throughput) * 1000;
}

/** The live section of the monitor. */
export const MonitorLive: FC<{ data: MonitorData; now: Date }> = ({ data, now }) => {
  const e = data.execution;
  const eta = etaMs(e);
  return (
    <>
      <div class="row">
        <span>Status</span>
        <Badge status={shownStatus(e)} id="run-status" />
        <span class="muted">
          {e.pipelineToken} · attempt {e.attempts}
        </span>
      </div>
      {e.status === "failed" && e.reason ? (
        <Notice kind="error">
          <strong>The run failed{e.reasonCode ? ` (${e.reasonCode})` : ""}.</strong> {e.reason}
        </Notice>
      ) : null}
      {e.status === "cancelled" ? (
        <Notice kind="warning">
          Cancelled{e.cancelledBy ? ` by ${e.cancelledBy.tokenName}` : ""}. Batches committed before the
          cancel stay in the target.
        </Notice>
      ) : null}
      <div class="stats">
        <div class="stat">
          Duration <Elapsed since={e.startedAt} until={e.finishedAt} now={now} />
        </div>
        <div class="stat">
          Records <b>{count(e.recordsProcessed)}</b>
          <span class="muted">of {count(e.totals.total)}</span>
        </div>
        <div class="stat">
          Throughput <b>{count(e.throughput)}</b>
          <span class="muted">records/s</span>
        </div>
        <div class="stat">
          ETA <b>{eta === null ? "–" : `${Math.ceil(eta / 1000)} s`}</b>
        </div>
        <div class="stat">
          Created / updated <b>{`${count(e.totals.created)} / ${count(e.totals.updated)}`}</b>
        </div>
        <div class="stat">
          Skipped / failed <b>{`${count(e.totals.skipped)} / ${count(e.totals.failed)}`}</b>
        </div>
      </div>
      {e.continuous ? (
        <section aria-labelledby="passes-title">
          <h2 id="passes-title">Polls</h2>
          <p>
            <b>{count(e.continuous.polls)}</b> polls
            {e.continuous.lastPollAt ? (
              <span class="muted"> · last at {when(e.continuous.lastPollAt)}</span>
            ) : null}
            {e.continuous.stopRequested && !isFinal(e.status) ? (
              <span>
                {" "}
                · stopping
                {e.continuous.stoppedBy ? ` (asked by ${e.continuous.stoppedBy.tokenName})` : ""}: the batches
                in flight commit first
              </span>
            ) : null}
          </p>
          {(data.passes ?? []).length > 0 ? (
            <ul>
              {(data.passes ?? []).map((p) => (
                <li>
                  {when(p.at)}: {p.description}
                </li>
              ))}
            </ul>
          ) : (
            <p class="muted">No poll has copied rows yet.</p>
          )}
        </section>
      ) : null}
      <h2>Entities</h2>
      {e.entities.length === 0 ? (
        <p class="muted">The plan is being made: entities appear once preflight passes.</p>
      ) : null}
      {e.entities.map((entity) => {
        const times = data.entityTimes.get(entity.entity);
        const percent = Math.max(0, Math.min(100, Math.round(entity.percent)));
        return (
          <section class="entity" aria-label={entity.entity}>
            <div class="row">
              <strong id={`entity-${entity.entity}`}>{entity.entity}</strong>
              <Badge status={entity.status} />
            </div>
            <div
              class={`bar ${entity.status}`}
              role="progressbar"
              aria-label={entity.entity}
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={percent}
              aria-valuetext={`${percent}% (${count(entity.processed)} of ${count(entity.total)} records)`}
            >
              <span class={`w${percent}`} />
            </div>
            <div class="row muted">
              <span>
                {count(entity.processed)} / {count(entity.total)} processed
              </span>
              <span>
                {count(entity.created)} created · {count(entity.updated)} updated · {count(entity.skipped)}{" "}
                skipped · {count(entity.failed)} failed
              </span>
              <span>
                <Elapsed
                  since={times?.startedAt ?? null}
                  until={times?.finishedAt ?? (isFinal(e.status) ? e.finishedAt : null)}
                  now={now}
                />
              </span>
            </div>
          </section>
        );
      })}
      <h2>Errors ({count(data.errorTotal)})</h2>
      {data.errors.length === 0 ? (
        <p class="muted">No errors.</p>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">At</th>
                <th scope="col">Entity</th>
                <th scope="col">Record key</th>
                <th scope="col">Message</th>
              </tr>
            </thead>
            <tbody>
              {data.errors.map((err) => (
                <tr>
                  <td>{when(err.at)}</td>
                  <td>{err.entity ?? "–"}</td>
                  <td>{err.recordKey ? err.recordKey.join(", ") : "–"}</td>
                  <td>
                    {err.severity === "warning" ? "warning: " : ""}
                    {err.message}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
};

/** The whole monitor page. */
export const ExecutionPage: FC<{
  data: MonitorData;
  now: Date;
  viewer: Viewer;
  assets: AssetPaths;
  canCancel: boolean;
  flash?: string | undefined;
}> = ({ data, now, viewer, assets, canCancel, flash }) => {
  const e = data.execution;
  const final = isFinal(e.status);
  return (
    <Layout title={`Run of ${e.pipelineName}`} assets={assets} viewer={viewer} section="pipelines">
      <p class="muted">
        <a href={`/pipelines/${e.pipelineId}`}>{e.pipelineName}</a> · started by {e.triggeredBy.tokenName} at{" "}
        {when(e.createdAt)}
      </p>
      <div class="row">
        <h1>Execution Monitor</h1>
        <span class="spacer" />
        {canCancel && !final && e.continuous && !e.continuous.stopRequested ? (
          <form method="post" action={`/pipelines/${e.pipelineId}/stop`} class="row">
            <input type="hidden" name="_csrf" value={viewer.csrfToken} />
            <button type="submit" class="secondary" title="The batches in flight commit first">
              Stop Pipeline
            </button>
          </form>
        ) : null}
        {canCancel && !final && !e.cancelRequested ? (
          <button type="button" class="danger" data-dialog-open="cancel-dialog" data-while-running>
            Cancel
          </button>
        ) : null}
      </div>
      {flash ? <Notice>{flash}</Notice> : null}
      <div
        id="live"
        aria-live="polite"
        data-fragment={`/executions/${e.id}/live`}
        data-events={`/api/v1/executions/${e.id}/events`}
        data-final={String(final)}
      >
        <MonitorLive data={data} now={now} />
      </div>
      {canCancel && !final ? (
        <dialog id="cancel-dialog" aria-labelledby="cancel-title">
          <h2 id="cancel-title">Cancel this run?</h2>
          <p>
            The run stops at the next batch boundary. Records already committed to the target are not rolled
            back; running the pipeline again continues from where it stopped.
          </p>
          <form method="post" action={`/executions/${e.id}/cancel`} class="row">
            <input type="hidden" name="_csrf" value={viewer.csrfToken} />
            <button type="submit" class="danger">
              Cancel run
            </button>
            <button type="button" class="secondary" data-dialog-close>
              Keep running
            </button>
          </form>
        </dialog>
      ) : null}
    </Layout>
  );
};
