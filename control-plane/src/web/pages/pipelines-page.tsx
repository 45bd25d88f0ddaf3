/** @jsxImportSource hono/jsx */
/**
 * The Pipelines page: a card per pipeline (name, source → target, entity
 * count, write strategy, last execution with its badge) with a Run button,
 * disabled with its reason while a run is queued or in progress; search by name.
 */
import type { FC } from "hono/jsx";
import type { PipelineView } from "../../pipelines/pipeline-view.js";
import { type AssetPaths, Badge, Layout, Notice, type Viewer, when } from "./layout.js";

/** What the page shows of each pipeline. */
export interface PipelineCard {
  pipeline: PipelineView;
  sourceName: string;
  targetName: string;
}

/** The Run button of a pipeline (a form posting to /pipelines/:id/run), or why it is not offered. */
export const RunButton: FC<{
  pipeline: PipelineView;
  viewer: Viewer;
  canRun: boolean;
  label: string;
}> = ({ pipeline, viewer, canRun, label }) => {
  if (!canRun) return null;
  const reasonId = `run-reason-${pipeline.id}`;
  return (
    <form method="post" action={`/pipelines/${pipeline.id}/run`} class="row">
      <input type="hidden" name="_csrf" value={viewer.csrfToken} />
      <button
        type="submit"
        disabled={pipeline.running}
        aria-describedby={pipeline.running ? reasonId : undefined}
        title={pipeline.running ? "A run of this pipeline is queued or in progress" : undefined}
      >
        {label}
      </button>
      {pipeline.running && pipeline.lastExecution ? (
        <span class="muted" id={reasonId}>
          {pipeline.mode === "continuous"
            ? "The pipeline is running"
            : `A run is ${pipeline.lastExecution.status === "queued" ? "queued" : "in progress"}`}
          : <a href={`/executions/${pipeline.lastExecution.id}`}>open its monitor</a>
        </span>
      ) : null}
    </form>
  );
};

/** The whole page. */
export const PipelinesPage: FC<{
  cards: PipelineCard[];
  search: string;
  viewer: Viewer;
  assets: AssetPaths;
  canRun: boolean;
  flash?: string | undefined;
  error?: string | undefined;
}> = ({ cards, search, viewer, assets, canRun, flash, error }) => (
  <Layout title="Pipelines" assets={assets} viewer={viewer} section="pipelines">
    <div class="row">
      <h1>Pipelines</h1>
      <span class="spacer" />
      <search>
        <form method="get" action="/pipelines" class="row">
          <label>
            <span class="visually-hidden">Search pipelines by name</span>
            <input type="search" name="search" value={search} placeholder="Search by name" />
          </label>
          <button type="submit" class="secondary">
            Search
          </button>
        </form>
      </search>
    </div>
    {flash ? <Notice>{flash}</Notice> : null}
    {error ? <Notice kind="error">{error}</Notice> : null}
    {cards.length === 0 ? (
      <p class="muted">
        {search
          ? `No pipeline's name contains "${search}".`
          : "No pipelines yet: create one with the CLI or the API."}
      </p>
    ) : (
      <div class="cards">
        {cards.map(({ pipeline, sourceName, targetName }) => (
          <article class="card" aria-labelledby={`p-${pipeline.id}`}>
            <h2 id={`p-${pipeline.id}`}>
              <a href={`/pipelines/${pipeline.id}`}>{pipeline.name}</a>
            </h2>
            <div class="muted">
              {sourceName} → {targetName}
            </div>
            <div class="muted">
              {pipeline.entities.length} {pipeline.entities.length === 1 ? "entity" : "entities"} ·{" "}
              {pipeline.writeStrategy} · {pipeline.action}
            </div>
            <div class="row">
              <span>Last run</span>
              {pipeline.lastExecution ? (
                <>
                  <Badge status={pipeline.lastExecution.status} />
                  <a href={`/executions/${pipeline.lastExecution.id}`}>
                    {when(pipeline.lastExecution.createdAt)}
                  </a>
                </>
              ) : (
                <Badge status="never" />
              )}
            </div>
            {pipeline.sourceKind === "files" ? (
              <p class="muted">Loads each uploaded file: {pipeline.entities[0]}</p>
            ) : (
              <RunButton
                pipeline={pipeline}
                viewer={viewer}
                canRun={canRun}
                label={pipeline.mode === "continuous" ? "Start" : "Run"}
              />
            )}
          </article>
        ))}
      </div>
    )}
  </Layout>
);
