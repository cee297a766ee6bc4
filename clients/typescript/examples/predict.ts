/**
 * List the models, classify an image and write a saliency overlay:
 *
 *   npm run example -- path/to/image.png [model]
 *
 * The server address comes from GLASSBOX_ADDRESS (default 127.0.0.1:50051), the token from GLASSBOX_TOKEN.
 */
import { writeFileSync } from "node:fs";

import { GlassboxClient, GlassboxError } from "../src";

async function main(imagePath: string, model: string): Promise<void> {
  const glassbox = new GlassboxClient();
  try {
    for (const summary of await glassbox.listModels()) {
      console.log(summary.name, summary.versions.map((v) => v.version).join(", "));
    }
    const [prediction] = await glassbox.predict(imagePath, { model, topK: 3 });
    for (const score of prediction.classes) {
      console.log(`${score.label.padEnd(16)} ${(100 * score.probability).toFixed(1)}%`);
    }
    const attribution = await glassbox.explain(imagePath, {
      model,
      method: { $case: "saliency", value: {} },
      output: { overlayPng: true },
    });
    writeFileSync("overlay.png", attribution.overlayPng);
    console.log(`wrote overlay.png for ${attribution.target?.label}`);
  } catch (error) {
    if (error instanceof GlassboxError) {
      console.error(`${error.codeName}${error.field ? ` (${error.field})` : ""}: ${error.details}`);
      process.exitCode = 1;
    } else {
      throw error;
    }
  } finally {
    glassbox.close();
  }
}

const [imagePath, model = "shapes"] = process.argv.slice(2);
if (!imagePath) {
  console.error("usage: npm run example -- IMAGE [MODEL]");
  process.exit(2);
}
void main(imagePath, model);
