/**
 * Runs against a live Glassbox server (see live-server.ts for the variables; without GLASSBOX_ADDRESS it
 * is skipped). Covers models, prediction, one attribution, one job watched to the end, cancellation and errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { status } from "@grpc/grpc-js";

import { GlassboxClient, GlassboxError, pb } from "../src";
import { address, image, model, withoutServer } from "./live-server";


describe("GlassboxClient against a live server", { skip: withoutServer }, () => {
  let glassbox: GlassboxClient;

  before(async () => {
    glassbox = new GlassboxClient({ address: address, timeoutMs: 20_000 });
    await glassbox.waitForReady(20_000);
  });

  after(() => glassbox.close());

  it("lists the models with their ready versions", async () => {
    const models = await glassbox.listModels();
    const entry = models.find((m) => m.name === model);
    assert.ok(entry, `${model} missing from ${models.map((m) => m.name).join(", ")}`);
    assert.equal(entry.versions[0].state, pb.ModelState.MODEL_STATE_READY);
  });

  it("describes a model", async () => {
    const info = await glassbox.getModel(model);
    assert.equal(info.name, model);
    assert.equal(info.backend, pb.Backend.BACKEND_TORCH);
    assert.ok(info.labels.length >= 2);
    assert.ok(info.supportedMethods.includes("saliency"));
  });

  it("predicts a PNG file and raw pixels alike", async () => {
    const [fromFile] = await glassbox.predict(image, { model, topK: 3 });
    assert.equal(fromFile.classes.length, 3);
    const probabilities = fromFile.classes.map((c) => c.probability);
    assert.deepEqual([...probabilities].sort((a, b) => b - a), probabilities);
    const info = await glassbox.getModel(model);
    const [height, width] = [info.inputHeight, info.inputWidth];
    const rgb = new Uint8Array(height * width * 3).fill(128);
    const [fromPixels] = await glassbox.predict({ height, width, rgb }, { model, topK: 1 });
    assert.ok(fromPixels.classes[0].probability > 0 && fromPixels.classes[0].probability <= 1);
  });

  it("computes one saliency attribution with a map and an overlay PNG", async () => {
    const response = await glassbox.attribute(image, {
      model,
      method: { $case: "saliency", value: {} },
      targets: { topK: 1 },
      output: { map: true, overlayPng: true },
    });
    assert.equal(response.method, "saliency");
    const attribution = response.images[0].attributions[0];
    const map = attribution.map;
    assert.ok(map);
    assert.equal(map.dtype, pb.DataType.DATA_TYPE_FLOAT32);
    const info = await glassbox.getModel(model);
    assert.deepEqual(map.shape, [info.inputHeight, info.inputWidth]);
    assert.equal(map.data.length, info.inputHeight * info.inputWidth * 4);
    const values = new Float32Array(map.data.buffer, map.data.byteOffset, map.data.length / 4);
    assert.ok(values.some((v) => v !== 0), "saliency map is all zeros");
    assert.deepEqual([...attribution.overlayPng.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    assert.ok(response.stats && response.stats.backwardPasses >= 1);
  });

  it("raises GlassboxError naming the field for a bad image, and the server keeps serving", async () => {
    await assert.rejects(
      glassbox.predict(new Uint8Array([1, 2, 3]), { model }),
      (error: unknown) => {
        assert.ok(error instanceof GlassboxError);
        assert.equal(error.code, status.INVALID_ARGUMENT);
        assert.equal(error.field, "images[0].encoded");
        assert.equal(error.reason, "INVALID_ARGUMENT");
        assert.equal(error.fieldViolations[0].description, error.details);
        return true;
      },
    );
    await assert.rejects(glassbox.getModel("no-such-model"), (error: unknown) => {
      assert.ok(error instanceof GlassboxError);
      assert.equal(error.codeName, "NOT_FOUND");
      assert.equal(error.reason, "MODEL_NOT_FOUND");
      assert.equal(error.status.domain, "glassbox.v1");
      assert.deepEqual({ ...error.metadata }, { model: "no-such-model" });
      assert.equal(error.field, "model");
      assert.equal(error.retryDelayMs, undefined);
      return true;
    });
    assert.ok((await glassbox.listModels()).length >= 1);
  });

  it("submits a job and watches it to the end", async () => {
    const submitted = await glassbox.submitJob({
      spec: {
        $case: "classVisualisation",
        value: { model, target: { classRef: { $case: "label", value: "star" } }, steps: 4 },
      },
    });
    assert.equal(submitted.state, pb.JobState.JOB_STATE_QUEUED);
    const steps: number[] = [];
    const job = await glassbox.waitForJob(submitted.id, { onUpdate: (u) => steps.push(u.job?.progress?.step ?? 0) });
    assert.equal(job.state, pb.JobState.JOB_STATE_SUCCEEDED);
    assert.deepEqual([...steps].sort((a, b) => a - b), steps);
    assert.equal(job.progress?.step, 4);
    assert.equal(job.result?.$case, "classVisualisation");
    if (job.result?.$case === "classVisualisation") {
      assert.equal(job.result.value.label, "star");
      assert.deepEqual([...(job.result.value.image?.png.subarray(0, 4) ?? [])], [0x89, 0x50, 0x4e, 0x47]);
    }
    assert.equal((await glassbox.getJob(submitted.id)).state, pb.JobState.JOB_STATE_SUCCEEDED);
  });

  it("cancels a running job", async () => {
    const submitted = await glassbox.submitJob({
      spec: { $case: "classVisualisation", value: { model, target: { classRef: { $case: "index", value: 0 } }, steps: 10000 } },
    });
    await glassbox.cancelJob(submitted.id);
    const job = await glassbox.waitForJob(submitted.id, { timeoutMs: 30_000 });
    assert.equal(job.state, pb.JobState.JOB_STATE_CANCELLED);
    assert.equal(job.error?.codeName, "CANCELLED");
    assert.ok(job.errorStatus);
    const failure = GlassboxError.fromJobStatus(job.errorStatus);
    assert.equal(failure.code, status.CANCELLED);
    assert.equal(failure.reason, "CANCELLED");
  });

  it("sends a request id with every submission, so the same id returns the same job", async () => {
    const spec = {
      $case: "classVisualisation" as const,
      value: { model, target: { classRef: { $case: "index" as const, value: 1 } }, steps: 10000 },
    };
    const first = await glassbox.submitJob({ spec });
    assert.match(first.requestId, /^[0-9a-f-]{36}$/);
    const again = await glassbox.submitJob({ spec, requestId: first.requestId });
    assert.equal(again.id, first.id);
    await assert.rejects(
      glassbox.submitJob({ spec: { ...spec, value: { ...spec.value, steps: 9999 } }, requestId: first.requestId }),
      (error: unknown) => {
        assert.ok(error instanceof GlassboxError);
        assert.equal(error.reason, "REQUEST_ID_REUSED");
        assert.equal(error.field, "request_id");
        assert.equal(error.metadata.job_id, first.id);
        return true;
      },
    );
    await glassbox.cancelJob(first.id);
    const final = await glassbox.waitForJob(first.id, { timeoutMs: 30_000, omitResult: true });
    assert.equal(final.state, pb.JobState.JOB_STATE_CANCELLED);
  });

  it("reports the server's limits, engines and the caller", async () => {
    const info = await glassbox.serverInfo();
    assert.ok(info.version.length > 0);
    assert.ok((info.limits?.maxBatchImages ?? 0) > 0);
    assert.equal(info.jobs?.engine, pb.JobEngineKind.JOB_ENGINE_KIND_IN_PROCESS);
    assert.ok(info.methods.includes("saliency"));
    assert.ok(info.jobKinds.includes("class_visualisation"));
    assert.ok(info.errorReasons.some((r) => r.reason === "JOB_NOT_ON_THIS_REPLICA" && r.code === "NOT_FOUND"));
    assert.equal(info.caller?.principal, "");
  });

  it("enforces the deadline", async () => {
    await assert.rejects(glassbox.listModels({ timeoutMs: 0 }), (error: unknown) => {
      assert.ok(error instanceof GlassboxError);
      assert.equal(error.code, status.DEADLINE_EXCEEDED);
      return true;
    });
  });
});
