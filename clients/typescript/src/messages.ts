/** The generated message types and enums, re-exported under one name (`pb`) for callers. */
export * from "./generated/glassbox/v1/tensor";
export {
  Backend,
  ClassScore,
  GetModelRequest,
  GetModelResponse,
  LayerInfo,
  ListModelsRequest,
  ListModelsResponse,
  ModelInfo,
  ModelState,
  ModelSummary,
  ModelVersionStatus,
  Normalization,
  Prediction,
  PredictRequest,
  PredictResponse,
  ResizePolicy,
} from "./generated/glassbox/v1/model_service";
export {
  Aggregation,
  AttributeRequest,
  AttributeResponse,
  Attribution,
  AttributionStats,
  Baseline,
  Colormap,
  ImageAttributions,
  IntegrationRule,
  NeuronScope,
  OutputOptions,
  SmoothGradVariant,
  TargetSpec,
} from "./generated/glassbox/v1/attribution_service";
export {
  CancelJobRequest,
  GetJobRequest,
  Job,
  JobError,
  JobProgress,
  JobState,
  ListJobsRequest,
  SubmitJobRequest,
  WatchJobRequest,
  WatchJobResponse,
} from "./generated/glassbox/v1/job_service";
export { ClassVisualisationSpec, ClassVisualisationResult, GeneratedImage, Objective } from "./generated/glassbox/v1/generative";
