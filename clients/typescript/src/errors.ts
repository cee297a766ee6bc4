/**
 * Typed errors for failed calls: `code` is the gRPC status, `details` the server's message, and
 * `field` the request field the server named (it prefixes its messages with `<field>: ` whenever a
 * request field is at fault), so callers can tell a user exactly what to fix.
 */
import { status, type ServiceError } from "@grpc/grpc-js";

const FIELD_PREFIX = /^([A-Za-z_]\w*(?:\[\d+\])?(?:\.[A-Za-z_]\w*(?:\[\d+\])?)*): /;

export class GlassboxError extends Error {
  /** gRPC status code, e.g. status.INVALID_ARGUMENT. */
  readonly code: status;
  /** The status name, e.g. "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** The server's message. */
  readonly details: string;
  /** The request field at fault, when the server named one. */
  readonly field: string | undefined;
  /** The RPC that failed, e.g. "Predict". */
  readonly method: string;

  constructor(code: status, details: string, method: string) {
    const codeName = status[code] ?? `CODE_${code}`;
    super(`${codeName} in ${method}: ${details}`);
    this.name = "GlassboxError";
    this.code = code;
    this.codeName = codeName;
    this.details = details;
    this.method = method;
    this.field = FIELD_PREFIX.exec(details)?.[1];
  }

  static fromServiceError(error: ServiceError, method: string): GlassboxError {
    return new GlassboxError(error.code, error.details || error.message, method);
  }
}
