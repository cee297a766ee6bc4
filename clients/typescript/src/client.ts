/**
 * A small typed wrapper over the generated @grpc/grpc-js clients: promises instead of callbacks, a
 * deadline on every call, retries of UNAVAILABLE with backoff (gRPC's own retry policy, inside the
 * deadline), TLS / mutual TLS, a bearer token, and errors as GlassboxError.
 *
 *   const glassbox = new GlassboxClient({ address: "127.0.0.1:50051" });
 *   const [prediction] = await glassbox.predict("cat.png", { model: "shapes" });
 */
import { randomUUID } from "node:crypto";

import {
  status,
  Metadata,
  type CallOptions,
  type Client,
  type ClientUnaryCall,
  type ServiceError,
} from "@grpc/grpc-js";

import {
  AttributeRequest,
  AttributionServiceClient,
  type AttributeResponse,
  type Attribution,
  type DeepPartial,
} from "./generated/glassbox/v1/attribution_service";
import {
  InspectionServiceClient,
  type EmbedResponse,
  type FilterView,
  type GetActivationsResponse,
  type GetFiltersResponse,
  type Pooling,
} from "./generated/glassbox/v1/inspection";
import {
  ModelServiceClient,
  type ModelInfo,
  type ModelSummary,
  type Prediction,
} from "./generated/glassbox/v1/model_service";
import { RequestPriority } from "./generated/glassbox/v1/priority";
import {
  JobServiceClient,
  JobState,
  SubmitJobRequest,
  type Job,
  type WatchJobResponse,
} from "./generated/glassbox/v1/job_service";
import { RobustnessServiceClient, type RobustnessRecord } from "./generated/glassbox/v1/robustness";
import { ServerServiceClient, type GetServerInfoResponse } from "./generated/glassbox/v1/server_service";
import { resolveConnection, type CallSettings, type GlassboxClientOptions } from "./connection";
import { GlassboxError } from "./errors";
import { toImage, type ImageInput } from "./images";

const FINISHED = new Set([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]);

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export class GlassboxClient {
  readonly address: string;
  private readonly models: ModelServiceClient;
  private readonly attribution: AttributionServiceClient;
  private readonly jobs: JobServiceClient;
  private readonly inspection: InspectionServiceClient;
  private readonly robustness: RobustnessServiceClient;
  private readonly server: ServerServiceClient;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: GlassboxClientOptions = {}) {
    const connection = resolveConnection(options);
    this.address = connection.address;
    this.token = connection.token;
    this.timeoutMs = connection.timeoutMs;
    const { credentials, channelOptions } = connection;
    this.models = new ModelServiceClient(this.address, credentials, channelOptions);
    const shared = { ...channelOptions, channelOverride: this.models.getChannel() };
    this.attribution = new AttributionServiceClient(this.address, credentials, shared);
    this.jobs = new JobServiceClient(this.address, credentials, shared);
    this.inspection = new InspectionServiceClient(this.address, credentials, shared);
    this.robustness = new RobustnessServiceClient(this.address, credentials, shared);
    this.server = new ServerServiceClient(this.address, credentials, shared);
  }

  /** Resolves once the channel is connected; rejects after `timeoutMs`. */
  waitForReady(timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.models.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): void {
    this.server.close();
    this.robustness.close();
    this.inspection.close();
    this.jobs.close();
    this.attribution.close();
    this.models.close();
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    if (this.token) {
      metadata.set("authorization", `Bearer ${this.token}`);
    }
    return metadata;
  }

  private call<Req, Res>(client: Client, rpc: Unary<Req, Res>, name: string, request: Req, settings?: CallSettings): Promise<Res> {
    const deadline = Date.now() + (settings?.timeoutMs ?? this.timeoutMs);
    return new Promise((resolve, reject) => {
      rpc.call(client, request, this.metadata(), { deadline }, (error, response) => {
        if (error) {
          reject(GlassboxError.fromServiceError(error, name));
        } else {
          resolve(response);
        }
      });
    });
  }

  /**
   * The server's version, the limits and caps in force, its cache and job engines, methods, job kinds,
   * every error reason it may send, and who it takes the caller to be.
   */
  async serverInfo(settings?: CallSettings): Promise<GetServerInfoResponse> {
    return this.call(this.server, this.server.getServerInfo, "GetServerInfo", {}, settings);
  }

  /** Every model in the repository with the state of each version. */
  async listModels(settings?: CallSettings): Promise<ModelSummary[]> {
    const response = await this.call(this.models, this.models.listModels, "ListModels", {}, settings);
    return response.models;
  }

  /** Full description of a model version (default: the newest ready one). */
  async getModel(name: string, version = "", settings?: CallSettings): Promise<ModelInfo> {
    // `name` is the deprecated alias of `model`; it stays empty.
    const request = { model: name, version, name: "" };
    const response = await this.call(this.models, this.models.getModel, "GetModel", request, settings);
    if (!response.model) {
      throw new GlassboxError(status.INTERNAL, "GetModel answered without a model", "GetModel");
    }
    return response.model;
  }

  /** Top-k classes of each image, in order. `priority` is the scheduling class (default interactive). */
  async predict(
    images: ImageInput | ImageInput[],
    options: { model: string; version?: string; topK?: number; priority?: RequestPriority } & CallSettings,
  ): Promise<Prediction[]> {
    const list = Array.isArray(images) ? images : [images];
    const request = {
      model: options.model,
      version: options.version ?? "",
      images: list.map(toImage),
      topK: options.topK ?? 5,
      priority: options.priority ?? RequestPriority.REQUEST_PRIORITY_UNSPECIFIED,
    };
    const response = await this.call(this.models, this.models.predict, "Predict", request, options);
    return response.predictions;
  }

  /**
   * Attribution maps for every (image, target) pair. `request` is a partial AttributeRequest: set
   * `method` to e.g. `{ $case: "gradCam", value: { layer: "" } }`; the images may be ImageInputs.
   */
  async attribute(
    images: ImageInput | ImageInput[],
    request: Omit<DeepPartial<AttributeRequest>, "images">,
    settings?: CallSettings,
  ): Promise<AttributeResponse> {
    const list = Array.isArray(images) ? images : [images];
    const full = AttributeRequest.fromPartial({ ...request, images: list.map(toImage) } as DeepPartial<AttributeRequest>);
    return this.call(this.attribution, this.attribution.attribute, "Attribute", full, settings);
  }

  /** The first attribution of the first image: convenient for one image and one target. */
  async explain(
    image: ImageInput,
    request: Omit<DeepPartial<AttributeRequest>, "images">,
    settings?: CallSettings,
  ): Promise<Attribution> {
    const response = await this.attribute(image, request, settings);
    const first = response.images[0]?.attributions[0];
    if (!first) {
      throw new GlassboxError(status.INTERNAL, "Attribute answered without an attribution", "Attribute");
    }
    return first;
  }

  /**
   * A convolution layer's kernels (default: the network's first Conv2d) as raw weights
   * `[out, in / groups, kh, kw]` and a tiled PNG; `view` defaults to colour for 3 input channels, else mean.
   */
  async getFilters(
    options: { model: string; version?: string; layer?: string; view?: FilterView } & CallSettings,
  ): Promise<GetFiltersResponse> {
    const request = { model: options.model, version: options.version ?? "", layer: options.layer ?? "", view: options.view ?? 0 };
    return this.call(this.inspection, this.inspection.getFilters, "GetFilters", request, options);
  }

  /**
   * A layer's output for one image: channels ranked by mean activation (only the `topK` highest when
   * above 0), their feature maps `[K, H, W]` in that order, and the maps tiled as a PNG.
   */
  async getActivations(
    image: ImageInput,
    options: { model: string; layer: string; version?: string; topK?: number } & CallSettings,
  ): Promise<GetActivationsResponse> {
    const request = {
      model: options.model,
      version: options.version ?? "",
      layer: options.layer,
      image: toImage(image),
      topK: options.topK ?? 0,
    };
    return this.call(this.inspection, this.inspection.getActivations, "GetActivations", request, options);
  }

  /**
   * One vector per image, `embeddings` `[N, D]` in request order, from `layer` (default: the
   * penultimate layer) pooled by `pooling` (default mean).
   */
  async embed(
    images: ImageInput | ImageInput[],
    options: { model: string; version?: string; layer?: string; pooling?: Pooling } & CallSettings,
  ): Promise<EmbedResponse> {
    const list = Array.isArray(images) ? images : [images];
    const request = {
      model: options.model,
      version: options.version ?? "",
      layer: options.layer ?? "",
      images: list.map(toImage),
      pooling: options.pooling ?? 0,
    };
    return this.call(this.inspection, this.inspection.embed, "Embed", request, options);
  }

  /**
   * The recorded robustness evaluations of a model (every version, or only `version`), newest first:
   * at most `limit` (0..1000; default 100).
   */
  async getRobustnessHistory(
    model: string,
    options: { version?: string; limit?: number } & CallSettings = {},
  ): Promise<RobustnessRecord[]> {
    const request = { model, version: options.version ?? "", limit: options.limit ?? 0 };
    const rpc = this.robustness.getRobustnessHistory;
    const response = await this.call(this.robustness, rpc, "GetRobustnessHistory", request, options);
    return response.records;
  }

  /**
   * Queue a job. `request.spec` selects the kind (classVisualisation, featureVisualisation, deepdream,
   * featureInversion, styleTransfer, adversarialImage, robustnessEvaluation, embeddingMap,
   * topActivating, activationAtlas, explanationEvaluation, shapeBias), e.g.
   * `{ $case: "classVisualisation", value: { model: "shapes", target: { classRef: { $case: "label", value: "star" } } } }`
   * or `{ $case: "embeddingMap", value: { model: "shapes", images: { source: { $case: "named", value: "shapes-val" } } } }`;
   * the finished job's `result` is the member of the same name.
   *
   * `request.requestId` is the idempotency key (a random UUID when unset): submitting again with the
   * same id and spec returns the same job, so the call is retried safely.
   */
  async submitJob(request: DeepPartial<SubmitJobRequest>, settings?: CallSettings): Promise<Job> {
    const full = SubmitJobRequest.fromPartial({ ...request, requestId: request.requestId || randomUUID() });
    const response = await this.call(this.jobs, this.jobs.submitJob, "SubmitJob", full, settings);
    return requireJob(response.job, "SubmitJob");
  }

  async getJob(jobId: string, settings?: CallSettings): Promise<Job> {
    const response = await this.call(this.jobs, this.jobs.getJob, "GetJob", { jobId }, settings);
    return requireJob(response.job, "GetJob");
  }

  async cancelJob(jobId: string, settings?: CallSettings): Promise<Job> {
    const response = await this.call(this.jobs, this.jobs.cancelJob, "CancelJob", { jobId }, settings);
    return requireJob(response.job, "CancelJob");
  }

  /**
   * The job now, then every update until it finishes (`for await (const update of client.watchJob(id))`);
   * `update.heartbeat` marks the messages that only show the stream is alive. `omitResult` leaves the
   * result out of the last update.
   */
  async *watchJob(
    jobId: string,
    options: { previewEverySteps?: number; omitResult?: boolean } & CallSettings = {},
  ): AsyncGenerator<WatchJobResponse> {
    const deadline = Date.now() + (options.timeoutMs ?? 3_600_000);
    const request = { jobId, previewEverySteps: options.previewEverySteps ?? 0, omitResult: options.omitResult ?? false };
    const stream = this.jobs.watchJob(request, this.metadata(), { deadline });
    try {
      for await (const update of stream as AsyncIterable<WatchJobResponse>) {
        yield update;
      }
    } catch (error) {
      throw GlassboxError.fromServiceError(error as ServiceError, "WatchJob");
    } finally {
      stream.cancel();
    }
  }

  /** Watch a job until it finishes and return it in its final state; `onUpdate` sees every update. */
  async waitForJob(
    jobId: string,
    options: { onUpdate?: (update: WatchJobResponse) => void; omitResult?: boolean } & CallSettings = {},
  ): Promise<Job> {
    for await (const update of this.watchJob(jobId, options)) {
      options.onUpdate?.(update);
      if (update.job && FINISHED.has(update.job.state)) {
        return update.job;
      }
    }
    throw new GlassboxError(status.UNAVAILABLE, `the watch of job ${jobId} ended before the job did`, "WatchJob");
  }
}

function requireJob(job: Job | undefined, method: string): Job {
  if (!job) {
    throw new GlassboxError(status.INTERNAL, `${method} answered without a job`, method);
  }
  return job;
}
