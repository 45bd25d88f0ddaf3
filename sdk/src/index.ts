/**
 * @module @dray/sdk
 * The TypeScript SDK of the Dray control-plane API.
 *
 * @example
 * import { createDrayClient } from "@dray/sdk";
 * const dray = createDrayClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.DRAY_TOKEN! });
 * const done = await dray.pipelines.run(pipelineId, { wait: true });
 */

export type { components, paths } from "./api.js";
export * from "./client.js";
export {
  type ApiErrorCode,
  DrayApiError,
  DrayConnectionError,
  ExecutionCancelledError,
  ExecutionFailedError,
} from "./errors.js";
export type { ExecutionEvent } from "./event-stream.js";
export { type CursorPage, collect, eachItem } from "./pages.js";
