import { readFileSync } from "node:fs";

import { DataType, type Image } from "./generated/glassbox/v1/tensor";

/** An image: a file path, encoded bytes (PNG, JPEG, ...), or raw RGB pixels (uint8, row-major [H, W, 3]). */
export type ImageInput = string | Uint8Array | { height: number; width: number; rgb: Uint8Array };

/** An image as the wire message: paths are read, bytes travel encoded, pixels as a uint8 tensor. */
export function toImage(input: ImageInput): Image {
  if (typeof input === "string") {
    return { source: { $case: "encoded", value: readFileSync(input) } };
  }
  if (input instanceof Uint8Array) {
    return { source: { $case: "encoded", value: Buffer.from(input) } };
  }
  if (input.rgb.length !== input.height * input.width * 3) {
    throw new RangeError(`rgb has ${input.rgb.length} bytes; ${input.height}x${input.width}x3 needs ${input.height * input.width * 3}`);
  }
  return {
    source: {
      $case: "pixels",
      value: { dtype: DataType.DATA_TYPE_UINT8, shape: [input.height, input.width, 3], data: Buffer.from(input.rgb) },
    },
  };
}
