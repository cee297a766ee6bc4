/**
 * A small typed wrapper over the generated @grpc/grpc-js clients: promises instead of callbacks, a
 * deadline on every call, retries of UNAVAILABLE with backoff (gRPC's own retry policy, inside the
 * deadline), TLS / mutual TLS, a bearer token, and errors as GlassboxError.
 *
 *   const glassbox = new GlassboxClient({ address: "127.0.0.1:50051" });
 *   const [prediction] = await glassbox.predict("cat.png", { model: "shapes" });
 */
import {
  credentials as grpcCredentials,
  status,
  Metadata,
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientOptions,
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
  ModelServiceClient,
  type ModelInfo,
  type ModelSummary,
  type Prediction,
} from "./generated/glassbox/v1/model_service";
import {
  JobServiceClient,
  JobState,
  SubmitJobRequest,
  type Job,
  type WatchJobResponse,
} from "./generated/glassbox/v1/job_service";
import { GlassboxError } from "./errors";
import { toImage, type ImageInput } from "./images";

/** Retries of calls that fail with UNAVAILABLE; gRPC caps maxAttempts at 5. */
export interface RetryPolicy {
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  backoffMultiplier: number;
}

export interface GlassboxClientOptions {
  /** host:port; default GLASSBOX_ADDRESS or 127.0.0.1:50051. */
  address?: string;
  /** Use TLS (implied by caCert or clientCert); system roots verify the server unless caCert is given. */
  tls?: boolean;
  /** PEM CA that signed the server's certificate. */
  caCert?: Buffer;
  /** PEM certificate and key of this client, for mutual TLS. */
  clientCert?: Buffer;
  clientKey?: Buffer;
  /** Name to verify in the server's certificate when it differs from the address. */
  serverName?: string;
  /** Bearer token; default GLASSBOX_TOKEN. */
  token?: string;
  /** Default deadline of every call in milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Retries of UNAVAILABLE; false turns them off. */
  retry?: RetryPolicy | false;
}

/** Per-call options. */
export interface CallSettings {
  /** Deadline of this call in milliseconds (default: the client's). */
  timeoutMs?: number;
}

const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, initialBackoffMs: 200, maxBackoffMs: 5000, backoffMultiplier: 2 };
/** Every idempotent RPC; SubmitJob is left out (a retry after a lost answer could queue a job twice). */
const RETRIED_METHODS = [
  { service: "glassbox.v1.ModelService" },
  { service: "glassbox.v1.AttributionService" },
  ...["GetJob", "WatchJob", "CancelJob", "ListJobs"].map((method) => ({ service: "glassbox.v1.JobService", method })),
];
const FINISHED = new Set([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]);

/** Retries as configured, and round_robin over every address the target resolves to (calls spread over replicas). */
function serviceConfig(retry: RetryPolicy | false): string {
  const loadBalancingConfig = [{ round_robin: {} }];
  if (retry === false || retry.maxAttempts < 2) {
    return JSON.stringify({ loadBalancingConfig, methodConfig: [] });
  }
  const retryPolicy = {
    maxAttempts: Math.min(retry.maxAttempts, 5),
    initialBackoff: `${retry.initialBackoffMs / 1000}s`,
    maxBackoff: `${retry.maxBackoffMs / 1000}s`,
    backoffMultiplier: retry.backoffMultiplier,
    retryableStatusCodes: ["UNAVAILABLE"],
  };
  return JSON.stringify({ loadBalancingConfig, methodConfig: [{ name: RETRIED_METHODS, retryPolicy }] });
}

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
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: GlassboxClientOptions = {}) {
    this.address = options.address ?? process.env.GLASSBOX_ADDRESS ?? "127.0.0.1:50051";
    this.token = options.token ?? (process.env.GLASSBOX_TOKEN || undefined);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    const useTls = options.tls === true || options.caCert !== undefined || options.clientCert !== undefined;
    const channelCredentials: ChannelCredentials = useTls
      ? grpcCredentials.createSsl(options.caCert ?? null, options.clientKey ?? null, options.clientCert ?? null)
      : grpcCredentials.createInsecure();
    const channelOptions: Partial<ClientOptions> = {
      "grpc.service_config": serviceConfig(options.retry ?? DEFAULT_RETRY),
      "grpc.enable_retries": options.retry === false ? 0 : 1,
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
      ...(options.serverName ? { "grpc.ssl_target_name_override": options.serverName } : {}),
    };
    this.models = new ModelServiceClient(this.address, channelCredentials, channelOptions);
    const shared = { ...channelOptions, channelOverride: this.models.getChannel() };
    this.attribution = new AttributionServiceClient(this.address, channelCredentials, shared);
    this.jobs = new JobServiceClient(this.address, channelCredentials, shared);
  }

  /** Resolves once the channel is connected; rejects after `timeoutMs`. */
  waitForReady(timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.models.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): void {
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

  /** Every model in the repository with the state of each version. */
  async listModels(settings?: CallSettings): Promise<ModelSummary[]> {
    const response = await this.call(this.models, this.models.listModels, "ListModels", {}, settings);
    return response.models;
  }

  /** Full description of a model version (default: the newest ready one). */
  async getModel(name: string, version = "", settings?: CallSettings): Promise<ModelInfo> {
    const response = await this.call(this.models, this.models.getModel, "GetModel", { name, version }, settings);
    if (!response.model) {
      throw new GlassboxError(status.INTERNAL, "GetModel answered without a model", "GetModel");
    }
    return response.model;
  }

  /** Top-k classes of each image, in order. */
  async predict(
    images: ImageInput | ImageInput[],
    options: { model: string; version?: string; topK?: number } & CallSettings,
  ): Promise<Prediction[]> {
    const list = Array.isArray(images) ? images : [images];
    const request = { model: options.model, version: options.version ?? "", images: list.map(toImage), topK: options.topK ?? 5 };
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
   * Queue a job. `request.spec` selects the kind, e.g.
   * `{ $case: "classVisualisation", value: { model: "shapes", target: { classRef: { $case: "label", value: "star" } } } }`.
   */
  async submitJob(request: DeepPartial<SubmitJobRequest>, settings?: CallSettings): Promise<Job> {
    const full = SubmitJobRequest.fromPartial(request);
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

  /** The job now, then every update until it finishes (`for await (const update of client.watchJob(id))`). */
  async *watchJob(jobId: string, options: { previewEverySteps?: number } & CallSettings = {}): AsyncGenerator<WatchJobResponse> {
    const deadline = Date.now() + (options.timeoutMs ?? 3_600_000);
    const request = { jobId, previewEverySteps: options.previewEverySteps ?? 0 };
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
  async waitForJob(jobId: string, options: { onUpdate?: (update: WatchJobResponse) => void } & CallSettings = {}): Promise<Job> {
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
