/**
 * InspectionService through the client against a live server (tests/clients/test_typescript_client.py
 * starts one; see client.test.ts for the variables): filters match the layer GetModel describes,
 * activations are ranked by their own maps' means, Embed's pooled vectors equal the means, maxima and
 * maps GetActivations returns for the same layer, bad requests reject naming the field, and an
 * embedding_map job over the named set `shapes-val` runs to the end.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { status } from "@grpc/grpc-js";

import { GlassboxClient, GlassboxError, pb } from "../src";
import { address, image, model, withoutServer } from "./live-server";


/** The values of a float32 tensor (little-endian, as the server writes them). */
function values(tensor: pb.Tensor | undefined): Float32Array {
  assert.ok(tensor, "tensor missing");
  assert.equal(tensor.dtype, pb.DataType.DATA_TYPE_FLOAT32);
  const copy = Uint8Array.from(tensor.data);
  return new Float32Array(copy.buffer);
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): [number, number] {
  assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  return [png.readUInt32BE(16), png.readUInt32BE(20)];
}

function assertClose(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-4 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

function rejectsNaming(promise: Promise<unknown>, code: status, field: string): Promise<void> {
  return assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof GlassboxError, String(error));
    assert.equal(error.code, code, error.message);
    assert.equal(error.field, field, error.message);
    return true;
  });
}

describe("InspectionService and inspection jobs through the client", { skip: withoutServer }, () => {
  let glassbox: GlassboxClient;
  let layers: pb.LayerInfo[];
  /** The last layer with a [C, H, W] output above 1×1: the one the activation tests read. */
  let spatial: pb.LayerInfo;

  before(async () => {
    glassbox = new GlassboxClient({ address: address, timeoutMs: 20_000 });
    await glassbox.waitForReady(20_000);
    layers = (await glassbox.getModel(model)).layers;
    const candidates = layers.filter((l) => l.outputShape.length === 3 && l.outputShape[1] > 1);
    spatial = candidates[candidates.length - 1];
    assert.ok(spatial, "the model has no spatial layer");
  });

  after(() => glassbox.close());

  it("getFilters draws the first Conv2d layer's weights in colour", async () => {
    const firstConv = layers.find((l) => l.kind === "Conv2d");
    assert.ok(firstConv);
    const filters = await glassbox.getFilters({ model });
    assert.equal(filters.layer, firstConv.name);
    assert.equal(filters.view, pb.FilterView.FILTER_VIEW_COLOUR);
    const [outChannels, inChannels, kh, kw] = filters.weights?.shape ?? [];
    assert.equal(outChannels, firstConv.outputShape[0]);
    assert.equal(inChannels, 3);
    assert.equal(values(filters.weights).length, outChannels * inChannels * kh * kw);
    assert.ok(filters.gridRows * filters.gridColumns >= outChannels);
    const step = filters.tileSize + 1;
    assert.deepEqual(pngSize(filters.gridPng), [filters.gridColumns * step - 1, filters.gridRows * step - 1]);

    const mean = await glassbox.getFilters({ model, layer: firstConv.name, view: pb.FilterView.FILTER_VIEW_MEAN });
    assert.equal(mean.view, pb.FilterView.FILTER_VIEW_MEAN);
    assert.deepEqual(values(mean.weights), values(filters.weights));
  });

  it("getActivations ranks channels by the means of the maps it returns", async () => {
    const [channels, height, width] = spatial.outputShape;
    const all = await glassbox.getActivations(image, { model, layer: spatial.name });
    assert.equal(all.layer, spatial.name);
    assert.equal(all.layerChannels, channels);
    assert.equal(all.channels.length, channels);
    assert.deepEqual(all.activations?.shape, [channels, height, width]);
    const maps = values(all.activations);
    all.channels.forEach((channel, k) => {
      const map = maps.subarray(k * height * width, (k + 1) * height * width);
      assertClose(channel.mean, map.reduce((sum, v) => sum + v, 0) / map.length, `mean of channel ${channel.channel}`);
      assertClose(channel.max, Math.max(...map), `max of channel ${channel.channel}`);
      if (k > 0) {
        assert.ok(all.channels[k - 1].mean >= channel.mean, "channels are not ranked by mean");
      }
    });
    assert.deepEqual([...all.channels.map((c) => c.channel)].sort((a, b) => a - b), [...Array(channels).keys()]);
    assert.ok(all.gridRows * all.gridColumns >= channels);
    pngSize(all.gridPng);

    const top = await glassbox.getActivations(image, { model, layer: spatial.name, topK: 3 });
    assert.deepEqual(top.channels, all.channels.slice(0, 3));
    assert.deepEqual(top.activations?.shape, [3, height, width]);
  });

  it("embed pools the layer's maps into one vector per image", async () => {
    const [channels, height, width] = spatial.outputShape;
    const activations = await glassbox.getActivations(image, { model, layer: spatial.name });
    const byChannel = new Map(activations.channels.map((c, k) => [c.channel, { ...c, rank: k }]));
    const maps = values(activations.activations);

    const mean = await glassbox.embed([image, image], { model, layer: spatial.name });
    assert.equal(mean.pooling, pb.Pooling.POOLING_MEAN);
    assert.deepEqual(mean.embeddings?.shape, [2, channels]);
    const meanVectors = values(mean.embeddings);
    const max = await glassbox.embed(image, { model, layer: spatial.name, pooling: pb.Pooling.POOLING_MAX });
    const flat = await glassbox.embed(image, { model, layer: spatial.name, pooling: pb.Pooling.POOLING_FLATTEN });
    assert.deepEqual(flat.embeddings?.shape, [1, channels * height * width]);
    const flatVector = values(flat.embeddings);
    const maxVector = values(max.embeddings);
    for (let c = 0; c < channels; c++) {
      const expected = byChannel.get(c);
      assert.ok(expected);
      assertClose(meanVectors[c], expected.mean, `mean-pooled ${c}`);
      assertClose(meanVectors[channels + c], expected.mean, `mean-pooled ${c} of the second image`);
      assertClose(maxVector[c], expected.max, `max-pooled ${c}`);
      const map = maps.subarray(expected.rank * height * width, (expected.rank + 1) * height * width);
      const flatMap = flatVector.subarray(c * height * width, (c + 1) * height * width);
      map.forEach((v, i) => assertClose(flatMap[i], v, `flattened ${c}[${i}]`));
    }

    const penultimate = await glassbox.embed(image, { model });
    assert.ok(layers.some((l) => l.name === penultimate.layer), `${penultimate.layer} is not a layer of the model`);
    assert.equal(penultimate.embeddings?.shape[0], 1);
  });

  it("rejects bad inspection requests naming the field, and the server keeps serving", async () => {
    await rejectsNaming(glassbox.getActivations(image, { model, layer: "no.such.layer" }), status.INVALID_ARGUMENT, "layer");
    const tooMany = spatial.outputShape[0] + 1;
    const overTopK = glassbox.getActivations(image, { model, layer: spatial.name, topK: tooMany });
    await rejectsNaming(overTopK, status.INVALID_ARGUMENT, "top_k");
    await rejectsNaming(glassbox.embed([], { model }), status.INVALID_ARGUMENT, "images");
    await rejectsNaming(glassbox.embed(image, { model, pooling: 9 as pb.Pooling }), status.INVALID_ARGUMENT, "pooling");
    const notConvolution = layers.find((l) => l.kind !== "Conv2d");
    assert.ok(notConvolution);
    await rejectsNaming(glassbox.getFilters({ model, layer: notConvolution.name }), status.INVALID_ARGUMENT, "layer");
    await rejectsNaming(glassbox.getFilters({ model: "no-such-model" }), status.NOT_FOUND, "model");
    assert.equal((await glassbox.getFilters({ model })).model, model);
  });

  it("runs an embedding_map job over the named set shapes-val", async () => {
    const count = 24;
    const submitted = await glassbox.submitJob({
      spec: {
        $case: "embeddingMap",
        value: {
          model,
          seed: 3,
          images: { source: { $case: "named", value: "shapes-val" }, limit: count },
          projections: [pb.Projection.PROJECTION_PCA],
          canvasSize: 256,
        },
      },
    });
    const job = await glassbox.waitForJob(submitted.id, { timeoutMs: 120_000 });
    assert.equal(job.state, pb.JobState.JOB_STATE_SUCCEEDED, job.error?.message);
    assert.equal(job.result?.$case, "embeddingMap");
    if (job.result?.$case !== "embeddingMap") {
      return;
    }
    const result = job.result.value;
    assert.equal(result.embeddings?.shape[0], count);
    assert.equal(result.labels.length, count);
    assert.equal(result.predictions.length, count);
    assert.equal(result.names.length, count);
    assert.equal(result.layouts.length, 1);
    const [layout] = result.layouts;
    assert.equal(layout.projection, pb.Projection.PROJECTION_PCA);
    assert.deepEqual(layout.coordinates?.shape, [count, 2]);
    assert.ok(values(layout.coordinates).every(Number.isFinite));
    assert.ok(layout.explainedVariance > 0 && layout.explainedVariance <= 1 + 1e-6, String(layout.explainedVariance));
    assert.ok(layout.knnLabelAgreement >= 0 && layout.knnLabelAgreement <= 1);
    pngSize(layout.byLabelPng);
    pngSize(layout.byPredictionPng);

    const embedded = await glassbox.embed(image, { model, layer: result.layer });
    assert.equal(embedded.embeddings?.shape[1], result.embeddings?.shape[1]);
  });
});
