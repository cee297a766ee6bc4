/**
 * Typed errors for failed calls. The server sends every error with `google.rpc.Status` details (the
 * `grpc-status-details-bin` trailer), decoded here; nothing is parsed out of the message text:
 *
 * - `reason` / `domain` / `metadata`: the `google.rpc.ErrorInfo` (domain "glassbox.v1"), a stable
 *   reason such as MODEL_NOT_FOUND, METHOD_NOT_SUPPORTED, OVERLOADED or JOB_NOT_ON_THIS_REPLICA
 *   (docs/operations.md lists them all; `serverInfo().errorReasons` too);
 * - `fieldViolations` (`google.rpc.BadRequest`) and `field`, the first violation's field path;
 * - `retryDelayMs`: from a `google.rpc.RetryInfo` (on overload), else undefined.
 *
 * A job's failure (`Job.errorStatus`) is read the same way with `ErrorStatus.fromStatus`.
 */
import { status, type ServiceError } from "@grpc/grpc-js";

import { BadRequest, ErrorInfo, RetryInfo } from "./generated/google/rpc/error_details";
import { Status } from "./generated/google/rpc/status";

const STATUS_DETAILS_KEY = "grpc-status-details-bin";
const TYPE_PREFIX = "type.googleapis.com/";

/** One bad request field: its path as the request spells it (e.g. `images[0].encoded`) and why. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** A `google.rpc.Status` with its details decoded. */
export class ErrorStatus {
  constructor(
    readonly code: status,
    readonly message: string,
    readonly reason: string | undefined = undefined,
    readonly domain: string | undefined = undefined,
    readonly metadata: Readonly<Record<string, string>> = {},
    readonly fieldViolations: readonly FieldViolation[] = [],
    readonly retryDelayMs: number | undefined = undefined,
  ) {}

  /** The first bad field's path; undefined when the error is not about a field. */
  get field(): string | undefined {
    return this.fieldViolations[0]?.field;
  }

  static fromStatus(rpcStatus: Status): ErrorStatus {
    let info: ErrorInfo | undefined;
    const violations: FieldViolation[] = [];
    let retryDelayMs: number | undefined;
    for (const detail of rpcStatus.details) {
      const type = detail.typeUrl.startsWith(TYPE_PREFIX) ? detail.typeUrl.slice(TYPE_PREFIX.length) : detail.typeUrl;
      if (type === "google.rpc.ErrorInfo") {
        info = ErrorInfo.decode(detail.value);
      } else if (type === "google.rpc.BadRequest") {
        for (const v of BadRequest.decode(detail.value).fieldViolations) {
          violations.push({ field: v.field, description: v.description });
        }
      } else if (type === "google.rpc.RetryInfo") {
        const delay = RetryInfo.decode(detail.value).retryDelay;
        retryDelayMs = delay ? delay.seconds * 1000 + delay.nanos / 1e6 : undefined;
      }
    }
    return new ErrorStatus(
      rpcStatus.code as status,
      rpcStatus.message,
      info?.reason,
      info?.domain,
      info?.metadata ?? {},
      violations,
      retryDelayMs,
    );
  }

  /** The details a failed call's trailers carry, or undefined when the server sent none. */
  static fromServiceError(error: ServiceError): ErrorStatus | undefined {
    const values = error.metadata?.get(STATUS_DETAILS_KEY) ?? [];
    const raw = values.find((value): value is Buffer => Buffer.isBuffer(value));
    if (!raw) {
      return undefined;
    }
    try {
      return ErrorStatus.fromStatus(Status.decode(raw));
    } catch {
      return undefined;
    }
  }
}

export class GlassboxError extends Error {
  /** gRPC status code, e.g. status.INVALID_ARGUMENT. */
  readonly code: status;
  /** The status name, e.g. "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** The server's message. */
  readonly details: string;
  /** The RPC that failed, e.g. "Predict". */
  readonly method: string;
  /** The decoded status details (empty when the server sent none). */
  readonly status: ErrorStatus;

  constructor(code: status, details: string, method: string, errorStatus?: ErrorStatus) {
    const codeName = status[code] ?? `CODE_${code}`;
    super(`${codeName} in ${method}: ${details}`);
    this.name = "GlassboxError";
    this.code = code;
    this.codeName = codeName;
    this.details = details;
    this.method = method;
    this.status = errorStatus ?? new ErrorStatus(code, details);
  }

  /** The stable ErrorInfo reason, e.g. "MODEL_NOT_FOUND". */
  get reason(): string | undefined {
    return this.status.reason;
  }

  /** ErrorInfo metadata, e.g. `{ model: "shapes" }`. */
  get metadata(): Readonly<Record<string, string>> {
    return this.status.metadata;
  }

  /** Every bad request field the server named (BadRequest). */
  get fieldViolations(): readonly FieldViolation[] {
    return this.status.fieldViolations;
  }

  /** The request field at fault, when the server named one. */
  get field(): string | undefined {
    return this.status.field;
  }

  /** How long the server asks the caller to wait before retrying (RetryInfo), in milliseconds. */
  get retryDelayMs(): number | undefined {
    return this.status.retryDelayMs;
  }

  static fromServiceError(error: ServiceError, method: string): GlassboxError {
    return new GlassboxError(error.code, error.details || error.message, method, ErrorStatus.fromServiceError(error));
  }

  /** The error a finished job's `errorStatus` describes (e.g. to throw it when the job failed). */
  static fromJobStatus(jobStatus: Status, method = "Job"): GlassboxError {
    const decoded = ErrorStatus.fromStatus(jobStatus);
    return new GlassboxError(decoded.code, decoded.message, method, decoded);
  }
}
