export { GlassboxClient } from "./client";
export { type CallSettings, type GlassboxClientOptions, type RetryPolicy } from "./connection";
export { toImage, type ImageInput } from "./images";
export { ErrorStatus, GlassboxError, type FieldViolation } from "./errors";
export * as pb from "./messages";
