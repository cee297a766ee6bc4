/**
 * How the client reaches a server: address, TLS / mutual TLS, token, deadlines and retries.
 *
 * Retries are gRPC's own (a service-config retry policy): only UNAVAILABLE is retried, with backoff,
 * always inside the call's deadline, so a restarting server or a draining replica costs a short delay
 * instead of an error. Nothing else is retried: INVALID_ARGUMENT would fail again, and
 * RESOURCE_EXHAUSTED means "back off", which is the caller's decision.
 */
import { credentials as grpcCredentials, type ChannelCredentials, type ClientOptions } from "@grpc/grpc-js";

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
/**
 * Every idempotent RPC. SubmitJob is one because the client always sends a requestId: a retry of the
 * same message returns the job the first attempt queued.
 */
const RETRIED_METHODS = [
  { service: "glassbox.v1.ModelService" },
  { service: "glassbox.v1.AttributionService" },
  { service: "glassbox.v1.InspectionService" },
  { service: "glassbox.v1.RobustnessService" },
  { service: "glassbox.v1.ServerService" },
  ...["SubmitJob", "GetJob", "WatchJob", "CancelJob", "ListJobs"].map((method) => ({ service: "glassbox.v1.JobService", method })),
];

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

/** The settled connection: where to connect, how to authenticate the channel, and the channel options. */
export interface Connection {
  address: string;
  token: string | undefined;
  timeoutMs: number;
  credentials: ChannelCredentials;
  channelOptions: Partial<ClientOptions>;
}

/** Options and environment (GLASSBOX_ADDRESS, GLASSBOX_TOKEN) resolved into one Connection. */
export function resolveConnection(options: GlassboxClientOptions): Connection {
  const useTls = options.tls === true || options.caCert !== undefined || options.clientCert !== undefined;
  return {
    address: options.address ?? process.env.GLASSBOX_ADDRESS ?? "127.0.0.1:50051",
    token: options.token ?? (process.env.GLASSBOX_TOKEN || undefined),
    timeoutMs: options.timeoutMs ?? 30_000,
    credentials: useTls
      ? grpcCredentials.createSsl(options.caCert ?? null, options.clientKey ?? null, options.clientCert ?? null)
      : grpcCredentials.createInsecure(),
    channelOptions: {
      "grpc.service_config": serviceConfig(options.retry ?? DEFAULT_RETRY),
      "grpc.enable_retries": options.retry === false ? 0 : 1,
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
      ...(options.serverName ? { "grpc.ssl_target_name_override": options.serverName } : {}),
    },
  };
}
