/** Pipelines: store access, validation, the run plan and the monthly record limit math. */
export {
  type DeferredReference,
  type DependencyPlan,
  estimatedTotal,
  type PlanInput,
  type PlanWarning,
  planDependencies,
} from "./dependency-plan.js";
export * from "./pipeline-defaults.js";
export { getPipelinePlan, type PipelinePlan, readRecordUsage } from "./pipeline-plan.js";
export { noSnapshot, type PipelineSettings, validatePipelineSettings } from "./pipeline-validation.js";
export {
  type LastExecutionView,
  type PipelineActivity,
  type PipelineRow,
  type PipelineView,
  pipelineActivity,
  toPipelineView,
  toPipelineViews,
} from "./pipeline-view.js";
export {
  type CreatePipelineInput,
  createPipeline,
  deletePipeline,
  findPipeline,
  getPipeline,
  pipelineNotFound,
  type UpdatePipelineInput,
  updatePipeline,
} from "./pipelines-service.js";
export {
  type RecordLimitStatus,
  type RecordUsage,
  recordLimitStatus,
  remainingRecords,
  utcMonth,
} from "./record-limit.js";
export {
  assertRunnable,
  BLOCKING_CODES,
  buildRunPlan,
  type PlanIssue,
  type RunPlan,
  type RunPlanEntity,
  type RunPlanOptions,
} from "./run-plan.js";
