export { GlassboxClient, type CallSettings, type GlassboxClientOptions, type RetryPolicy } from "./client";
export { toImage, type ImageInput } from "./images";
export { GlassboxError } from "./errors";
export * as pb from "./messages";
