import createFetchClient from "openapi-fetch";
import type { components, paths } from "./api.js";
import {
  DrayApiError,
  DrayConnectionError,
  ExecutionCancelledError,
  ExecutionFailedError,
} from "./errors.js";
import { type ExecutionEvent, FINAL_STATUSES, followEvents } from "./event-stream.js";
import { eachItem } from "./pages.js";
import { multipartBody, newBoundary, readableOf, type UploadSource, uploadSource } from "./upload-body.js";

type Schemas = components["schemas"];
export type Organisation = Schemas["Organisation"];
export type Token = Schemas["Token"];
export type Environment = Schemas["Environment"];
export type CreatedEnvironment = Schemas["CreatedEnvironment"];
export type ConnectionTestResult = Schemas["ConnectionTestResult"];
export type SchemaSnapshot = Schemas["SchemaSnapshot"];
export type Pipeline = Schemas["Pipeline"];
/** Pipeline fields the control plane fills in with defaults when left out. */
type PipelineDefaults =
  | "action"
  | "batchSize"
  | "batchBytes"
  | "maxRetriesPerBatch"
  | "stopOnError"
  | "entityConcurrency"
  | "targetTriggers"
  | "loadOrder"
  | "transformations"
  | "qualityRules"
  | "sourceKind"
  | "sourceEnvironmentId"
  | "mode"
  | "cursorField"
  | "batchIntervalMs"
  | "safetyLagMs"
  | "maxFailedPolls"
  | "reconcileEveryPolls";
/** The body of a new pipeline: fields with defaults may be left out. */
export type CreatePipeline = Omit<Schemas["CreatePipeline"], PipelineDefaults> &
  Partial<Pick<Schemas["CreatePipeline"], PipelineDefaults>>;
export type UpdatePipeline = Schemas["UpdatePipeline"];
export type PipelinePlan = Schemas["PipelinePlan"];
/** Up to 20 transformed rows per transformed entity (transformed fields only), with warnings. */
export type PipelinePreview = Schemas["PipelinePreview"];
/** One field transformation of a `transform` pipeline: `{ entity, field, transformer, options }`. */
export type TransformationRule = Schemas["TransformationRule"];
/** A transformation a run applies, with its kind and, when carried over from a referenced key, `propagatedFrom`. */
export type EffectiveTransformation = Schemas["EffectiveTransformation"];
export type Execution = Schemas["Execution"];
export type StartedExecution = Schemas["StartedExecution"];
export type ExecutionHistory = Schemas["ExecutionHistoryPage"];
export type ExecutionErrors = Schemas["ExecutionErrorsPage"];
export type ExecutionBatches = Schemas["ExecutionBatchesPage"];
export type StageStatusEntry = Schemas["StageStatusEntry"];
export type JobSummary = Schemas["JobSummary"];
export type Usage = Schemas["Usage"];
/** A file of a `files` pipeline with its load state, rows and error. */
export type PipelineFile = Schemas["PipelineFile"];
/** A page of a pipeline's files, newest first, and the `next` cursor. */
export type PipelineFilesPage = Schemas["PipelineFilesPage"];
/** The files of one upload batch (publisher token) and whether all of their loads ended. */
export type PublisherStatus = Schemas["PublisherStatus"];
/**
 * The answer of an upload: a plain file (`status: "INITIALIZED"`), a gzip file
 * (`status: "accepted"`, its files listed) or bytes uploaded before (`duplicate: true`,
 * the first upload's token; nothing queued).
 */
export type UploadResult = Schemas["UploadedFile"] | Schemas["UploadedArchive"] | Schemas["DuplicateUpload"];

/** Options of {@link DrayClient.files}`.upload`. */
export interface UploadOptions {
  /** Names the upload batch; `status.byPublisherToken` rolls its files up. */
  publisherToken?: string;
  /** The file name sent (default: the path's last segment, or `upload` for a stream). */
  filename?: string;
  /** Called as the file's bytes are read into the request; `totalBytes` is undefined for a stream. */
  onProgress?: (sentBytes: number, totalBytes: number | undefined) => void;
  signal?: AbortSignal;
}
/** Query of the environments list (`limit` 1–200, default 50; `cursor` = the previous page's `next`). */
export type ListEnvironmentsQuery = NonNullable<paths["/api/v1/environments"]["get"]["parameters"]["query"]>;
/** Query of the tokens list (`limit` 1–200, default 50; `cursor` = the previous page's `next`). */
export type ListTokensQuery = NonNullable<paths["/api/v1/tokens"]["get"]["parameters"]["query"]>;
/** Query of the pipelines list (`limit` 1–200, default 50; `cursor` = the previous page's `next`). */
export type ListPipelinesQuery = NonNullable<paths["/api/v1/pipelines"]["get"]["parameters"]["query"]>;

/** Filters of the run history; `pageSize` is the size of each page fetched (1–100, default 20). */
export interface HistoryQuery {
  status?: string;
  from?: string;
  to?: string;
  pageSize?: number;
}

/** Filters of an execution's errors; `pageSize` is the size of each page fetched (1–500, default 50). */
export interface ErrorsQuery {
  severity?: "error" | "warning";
  entity?: string;
  pageSize?: number;
}

/** Filter of an execution's batches; `pageSize` is the size of each page fetched (1–500, default 50). */
export interface BatchesQuery {
  entity?: string;
  pageSize?: number;
}

/** Options of {@link createDrayClient}. */
export interface DrayClientOptions {
  /** Control-plane base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An API token (`dray_…`). */
  token: string;
  /** A fetch implementation. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** Options of {@link DrayClient.pipelines}`.run`. */
export interface RunOptions {
  /** Wait until the execution ends; resolves with it, or throws when it failed or was cancelled. */
  wait?: boolean;
  /** Confirm a destructive run (clean) against a protected environment. */
  confirm?: boolean;
  signal?: AbortSignal;
  /** Called with every event while waiting. */
  onEvent?: (event: ExecutionEvent) => void;
}

/**
 * A typed client of the Dray control-plane API, generated from its OpenAPI
 * document. Every method throws {@link DrayApiError} (with the API's `code`)
 * on an error answer and {@link DrayConnectionError} when the control plane
 * cannot be reached.
 *
 * @example
 * const dray = createDrayClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.DRAY_TOKEN! });
 * const execution = await dray.pipelines.run(pipelineId, { wait: true });
 * console.log(execution.totals.processed);
 */
export function createDrayClient(options: DrayClientOptions) {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const http = createFetchClient<paths>({
    baseUrl,
    headers: { authorization: `Bearer ${options.token}` },
    fetch: fetchImpl,
  });

  async function call<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
    let result: { data?: T; error?: unknown; response: Response };
    try {
      result = await request;
    } catch (error) {
      throw new DrayConnectionError(baseUrl, error);
    }
    if (result.error !== undefined || !result.response.ok) {
      const body = result.error as
        | { error?: { code?: string; message?: string; details?: unknown } }
        | undefined;
      throw new DrayApiError(
        result.response.status,
        body?.error?.code ?? "unknown",
        body?.error?.message ?? `HTTP ${result.response.status}`,
        body?.error?.details,
      );
    }
    return result.data as T;
  }

  /** Sends the upload form, streamed, and reads the answer (errors as from `call`). */
  async function postUpload(
    pipelineName: string,
    source: UploadSource,
    uploadOptions: UploadOptions,
  ): Promise<UploadResult> {
    const boundary = newBoundary();
    const fields = {
      pipeline: pipelineName,
      ...(uploadOptions.publisherToken === undefined ? {} : { publisherToken: uploadOptions.publisherToken }),
    };
    let readError: unknown;
    const chunks = async function* () {
      try {
        yield* multipartBody(boundary, fields, source, (sent) =>
          uploadOptions.onProgress?.(sent, source.totalBytes),
        );
      } catch (error) {
        readError = error;
        throw error;
      }
    };
    let response: Response;
    try {
      response = await fetchImpl(`${baseUrl}/api/v1/pipeline/upload`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${options.token}`,
          "content-type": `multipart/form-data; boundary=${boundary}`,
          accept: "application/json",
        },
        body: readableOf(chunks()),
        duplex: "half",
        ...(uploadOptions.signal ? { signal: uploadOptions.signal } : {}),
      } as RequestInit);
    } catch (error) {
      if (readError !== undefined) throw readError;
      if ((error as Error)?.name === "AbortError") throw error;
      throw new DrayConnectionError(baseUrl, error);
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (!response.ok) {
      const error = (body as { error?: { code?: string; message?: string; details?: unknown } } | undefined)
        ?.error;
      throw new DrayApiError(
        response.status,
        error?.code ?? "unknown",
        error?.message ?? `HTTP ${response.status}`,
        error?.details,
      );
    }
    return body as UploadResult;
  }

  const executions = {
    /** The execution with per-entity counters, duration, throughput and reason. */
    get: (id: string) => call(http.GET("/api/v1/executions/{id}", { params: { path: { id } } })),
    /** A page of errors and warnings, with record keys, and the `next` cursor (null on the last page). */
    errors: (id: string, query: ErrorsQuery & { page?: number; cursor?: string } = {}) =>
      call(http.GET("/api/v1/executions/{id}/errors", { params: { path: { id }, query } })),
    /** Every error and warning matching the query, oldest first, page after page (an async iterator). */
    errorsAll: (id: string, query: ErrorsQuery = {}) =>
      eachItem("errors", (cursor) =>
        call(
          http.GET("/api/v1/executions/{id}/errors", {
            params: { path: { id }, query: { ...query, ...(cursor ? { cursor } : {}) } },
          }),
        ),
      ),
    /** A page of batches with state, cursors, rows and attempts, and the `next` cursor. */
    batches: (id: string, query: BatchesQuery & { page?: number; cursor?: string } = {}) =>
      call(http.GET("/api/v1/executions/{id}/batches", { params: { path: { id }, query } })),
    /** Every batch (of `entity`, when given), page after page (an async iterator). */
    batchesAll: (id: string, query: BatchesQuery = {}) =>
      eachItem("batches", (cursor) =>
        call(
          http.GET("/api/v1/executions/{id}/batches", {
            params: { path: { id }, query: { ...query, ...(cursor ? { cursor } : {}) } },
          }),
        ),
      ),
    /** Asks the execution to stop; committed batches stay in the target. */
    cancel: (id: string, reason?: string) =>
      call(
        http.POST("/api/v1/executions/{id}/cancel", {
          params: { path: { id } },
          body: reason ? { reason } : {},
        }),
      ),
    /**
     * Live events of an execution (status, progress, stage log, errors) as an
     * async iterator; reconnects and resumes from the last event id. Ends after
     * the final status.
     *
     * @example
     * for await (const e of dray.executions.watch(id)) if (e.type === "execution.progress") console.log(e.data.processed);
     */
    watch: (id: string, watchOptions: { signal?: AbortSignal; lastEventId?: string } = {}) =>
      followEvents({
        url: `${baseUrl}/api/v1/executions/${encodeURIComponent(id)}/events`,
        token: options.token,
        fetch: fetchImpl,
        ...watchOptions,
      }),
    /** Waits until the execution ends and returns it. */
    async wait(
      id: string,
      waitOptions: { signal?: AbortSignal; onEvent?: (event: ExecutionEvent) => void } = {},
    ) {
      for await (const event of executions.watch(
        id,
        waitOptions.signal ? { signal: waitOptions.signal } : {},
      )) {
        waitOptions.onEvent?.(event);
      }
      let execution = await executions.get(id);
      while (!FINAL_STATUSES.has(execution.status)) {
        if (waitOptions.signal?.aborted) break;
        await new Promise((r) => setTimeout(r, 500));
        execution = await executions.get(id);
      }
      return execution;
    },
  };

  return {
    organisations: {
      /** Creates an organisation (system admin). */
      create: (body: Schemas["CreateOrganisation"]) => call(http.POST("/api/v1/organisations", { body })),
      get: (id: string) => call(http.GET("/api/v1/organisations/{id}", { params: { path: { id } } })),
      /** Changes the name or the monthly record limit (system admin). */
      update: (id: string, body: Schemas["UpdateOrganisation"]) =>
        call(http.PATCH("/api/v1/organisations/{id}", { params: { path: { id } }, body })),
    },
    tokens: {
      /** Creates a token; the secret is in the answer only. */
      create: (body: Schemas["CreateToken"]) => call(http.POST("/api/v1/tokens", { body })),
      /** One page of tokens (`limit`, default 50) and the `next` cursor (null on the last page). */
      list: (query: ListTokensQuery = {}) => call(http.GET("/api/v1/tokens", { params: { query } })),
      /** Every token of the organisation, page after page. */
      listAll: (query: Omit<ListTokensQuery, "cursor"> = {}) =>
        eachItem("tokens", (cursor) =>
          call(
            http.GET("/api/v1/tokens", { params: { query: { ...query, ...(cursor ? { cursor } : {}) } } }),
          ),
        ),
      revoke: (id: string) => call(http.DELETE("/api/v1/tokens/{id}", { params: { path: { id } } })),
    },
    environments: {
      /** Creates an environment and returns its one-time enrollment token. */
      create: (body: Schemas["CreateEnvironment"]) => call(http.POST("/api/v1/environments", { body })),
      /** One page of environments (`limit`, default 50) and the `next` cursor (null on the last page). */
      list: (query: ListEnvironmentsQuery = {}) =>
        call(http.GET("/api/v1/environments", { params: { query } })),
      /**
       * Every environment matching the query, page after page.
       *
       * @example
       * for await (const env of dray.environments.listAll({ sort: "health" })) console.log(env.name, env.health);
       */
      listAll: (query: Omit<ListEnvironmentsQuery, "cursor"> = {}) =>
        eachItem("environments", (cursor) =>
          call(
            http.GET("/api/v1/environments", {
              params: { query: { ...query, ...(cursor ? { cursor } : {}) } },
            }),
          ),
        ),
      get: (id: string) => call(http.GET("/api/v1/environments/{id}", { params: { path: { id } } })),
      update: (id: string, body: Schemas["UpdateEnvironment"]) =>
        call(http.PATCH("/api/v1/environments/{id}", { params: { path: { id } }, body })),
      delete: (id: string) => call(http.DELETE("/api/v1/environments/{id}", { params: { path: { id } } })),
      /** Live round trip to the agent and its database. */
      test: (id: string) => call(http.POST("/api/v1/environments/{id}/test", { params: { path: { id } } })),
      /** The cached entity snapshot; `refresh` asks the agent again. */
      entities: (id: string, entityOptions: { refresh?: boolean } = {}) =>
        call(
          http.GET("/api/v1/environments/{id}/entities", {
            params: { path: { id }, query: entityOptions.refresh ? { refresh: "true" } : {} },
          }),
        ),
      /** A new enrollment token, to pair a replacement agent. */
      enrollmentToken: (id: string) =>
        call(http.POST("/api/v1/environments/{id}/enrollment-token", { params: { path: { id } } })),
    },
    pipelines: {
      create: (body: CreatePipeline) =>
        call(http.POST("/api/v1/pipelines", { body: body as Schemas["CreatePipeline"] })),
      /** One page of pipelines (`limit`, default 50) and the `next` cursor (null on the last page). */
      list: (query: ListPipelinesQuery = {}) => call(http.GET("/api/v1/pipelines", { params: { query } })),
      /** Every pipeline matching the query, page after page (an async iterator). */
      listAll: (query: Omit<ListPipelinesQuery, "cursor"> = {}) =>
        eachItem("pipelines", (cursor) =>
          call(
            http.GET("/api/v1/pipelines", { params: { query: { ...query, ...(cursor ? { cursor } : {}) } } }),
          ),
        ),
      get: (id: string) => call(http.GET("/api/v1/pipelines/{id}", { params: { path: { id } } })),
      update: (id: string, body: UpdatePipeline) =>
        call(http.PATCH("/api/v1/pipelines/{id}", { params: { path: { id } }, body })),
      delete: (id: string) => call(http.DELETE("/api/v1/pipelines/{id}", { params: { path: { id } } })),
      /** Dependency levels, cycles, warnings, estimates and the effect on the monthly limit, without running. */
      plan: (id: string) => call(http.GET("/api/v1/pipelines/{id}/plan", { params: { path: { id } } })),
      /**
       * Up to 20 rows per entity with transformations, transformed by the source agent (only the
       * transformed fields), with warnings such as values too long for the target. Writes nothing.
       */
      preview: (id: string) =>
        call(http.POST("/api/v1/pipelines/{id}/preview", { params: { path: { id } } })),
      /** One page of the run history, newest first, with the `next` cursor (null on the last page). */
      history: (id: string, query: HistoryQuery & { page?: number; cursor?: string } = {}) =>
        call(http.GET("/api/v1/pipelines/{id}/executions", { params: { path: { id }, query } })),
      /** Every run of the history matching the query, newest first, page after page (an async iterator). */
      historyAll: (id: string, query: HistoryQuery = {}) =>
        eachItem("executions", (cursor) =>
          call(
            http.GET("/api/v1/pipelines/{id}/executions", {
              params: { path: { id }, query: { ...query, ...(cursor ? { cursor } : {}) } },
            }),
          ),
        ),
      /**
       * Starts a continuous pipeline: queues its long-lived execution, which copies new and
       * changed rows batch after batch until stopped.
       */
      start: (id: string) => call(http.POST("/api/v1/pipelines/{id}/start", { params: { path: { id } } })),
      /**
       * Asks a continuous pipeline to stop at its next batch boundary: the batches in flight
       * commit first. Answers at once with the execution; `executions.wait` follows it to its end.
       */
      stop: (id: string) => call(http.POST("/api/v1/pipelines/{id}/stop", { params: { path: { id } } })),
      /** At its next poll, the running continuous execution deletes target rows deleted at the source. */
      reconcile: (id: string) =>
        call(http.POST("/api/v1/pipelines/{id}/reconcile", { params: { path: { id } } })),
      /**
       * Starts an execution. With `wait`, resolves with the final execution or
       * throws {@link ExecutionFailedError} / {@link ExecutionCancelledError}.
       *
       * @example
       * const done = await dray.pipelines.run(id, { wait: true, onEvent: (e) => console.log(e.type) });
       */
      async run(id: string, runOptions: RunOptions = {}): Promise<Execution | StartedExecution> {
        const started = await call(
          http.POST("/api/v1/pipelines/{id}/executions", {
            params: { path: { id } },
            body: runOptions.confirm ? { confirm: true } : {},
          }),
        );
        if (!runOptions.wait) return started;
        const execution = await executions.wait(started.id, {
          ...(runOptions.signal ? { signal: runOptions.signal } : {}),
          ...(runOptions.onEvent ? { onEvent: runOptions.onEvent } : {}),
        });
        if (execution.status === "failed") throw new ExecutionFailedError(execution);
        if (execution.status === "cancelled") throw new ExecutionCancelledError(execution);
        return execution as Execution;
      },
    },
    executions,
    /** Files of `files` pipelines: upload, list, DROP FILE. */
    files: {
      /**
       * Uploads a file to the `files` pipeline named `pipelineName` (a path, streamed from
       * disk, or a readable stream); its load is queued. Same bytes again answer
       * `duplicate: true` with the first upload's token.
       *
       * @example
       * const r = await dray.files.upload("orders-feed", "./orders.csv", { onProgress: (n, t) => console.log(n, t) });
       */
      async upload(
        pipelineName: string,
        file: string | NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
        uploadOptions: UploadOptions = {},
      ): Promise<UploadResult> {
        const source = await uploadSource(file as string | AsyncIterable<Uint8Array>, uploadOptions.filename);
        return postUpload(pipelineName, source, uploadOptions);
      },
      /** One page of a pipeline's files, newest first (`limit`, default 50), and the `next` cursor. */
      list: (pipelineId: string, query: { limit?: number; cursor?: string } = {}) =>
        call(http.GET("/api/v1/pipelines/{id}/files", { params: { path: { id: pipelineId }, query } })),
      /** Every file of a pipeline, newest first, page after page (an async iterator). */
      listAll: (pipelineId: string) =>
        eachItem("files", (cursor) =>
          call(
            http.GET("/api/v1/pipelines/{id}/files", {
              params: { path: { id: pipelineId }, query: cursor ? { cursor } : {} },
            }),
          ),
        ),
      /** DROP FILE: forgets the file and its staged bytes (rows it loaded stay); 409 while it loads. */
      drop: async (pipelineId: string, fileId: string): Promise<void> => {
        await call(
          http.DELETE("/api/v1/pipelines/{id}/files/{fileId}", {
            params: { path: { id: pipelineId, fileId } },
          }),
        );
      },
    },
    /** This month's committed records, reservations, limit and remainder. */
    usage: () => call(http.GET("/api/v1/usage", {})),
    /** The seed-compatible status API. */
    status: {
      /** Stage entries of one job. */
      byToken: (pipelineToken: string) =>
        call(
          http.GET("/api/v1/pipeline/status", { params: { query: { pipelinetoken: pipelineToken } } }),
        ) as Promise<StageStatusEntry[]>,
      /** Job summaries of a pipeline, 20 per page, newest first. */
      byName: (pipelineName: string, page = 1) =>
        call(
          http.GET("/api/v1/pipeline/status", { params: { query: { pipelinename: pipelineName, page } } }),
        ) as Promise<JobSummary[]>,
      /** The files of one upload batch with their load status, and `allDone`. */
      byPublisherToken: (publisherToken: string) =>
        call(
          http.GET("/api/v1/pipeline/status", { params: { query: { publishertoken: publisherToken } } }),
        ) as Promise<PublisherStatus>,
    },
  };
}

/** The client returned by {@link createDrayClient}. */
export type DrayClient = ReturnType<typeof createDrayClient>;
