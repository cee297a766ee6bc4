/**
 * RobustnessService.GetRobustnessHistory through the client against a live server whose model has a
 * [monitoring] section: skipped unless GLASSBOX_TEST_MONITORING=1 says so (see live-server.ts). The Python side
 * (tests/clients/test_typescript_client.py) gives the model a [monitoring] section (reference set
 * `shapes-val`, its first 8 images, FGSM at ε = 0 and 1/255, no corruptions) and waits for that first
 * evaluation, so the history holds exactly one record; the record must agree with the full report of
 * the job that produced it, and ε = 0 must leave the clean accuracy unchanged.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { status } from "@grpc/grpc-js";

import { GlassboxClient, GlassboxError, pb } from "../src";
import { address, model, withoutMonitoring } from "./live-server";

const EVALUATED_IMAGES = 8;

function rejectsNaming(promise: Promise<unknown>, code: status, field: string): Promise<void> {
  return assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof GlassboxError, String(error));
    assert.equal(error.code, code, error.message);
    assert.equal(error.field, field, error.message);
    return true;
  });
}

describe("RobustnessService through the client", { skip: withoutMonitoring }, () => {
  let glassbox: GlassboxClient;

  before(async () => {
    glassbox = new GlassboxClient({ address: address, timeoutMs: 20_000 });
    await glassbox.waitForReady(20_000);
  });

  after(() => glassbox.close());

  it("getRobustnessHistory returns the monitoring record, matching its job's report", async () => {
    const records = await glassbox.getRobustnessHistory(model);
    assert.equal(records.length, 1);
    const [record] = records;
    assert.equal(record.model, model);
    assert.equal(record.version, "1");
    assert.equal(record.referenceSet, "shapes-val");
    assert.equal(record.trigger, "new_version");
    assert.equal(record.images, EVALUATED_IMAGES);
    assert.ok(record.time instanceof Date);
    assert.ok(Math.abs(Date.now() - record.time.getTime()) < 3_600_000, record.time.toISOString());
    assert.deepEqual(record.attacks.map((a) => [a.attack, a.threatModel]), [["fgsm", "Linf"], ["fgsm", "Linf"]]);
    assert.equal(record.corruptions.length, 0);
    const [clean, attacked] = record.attacks;
    assert.equal(clean.epsilon, 0);
    assert.equal(clean.robustAccuracy, record.cleanAccuracy);
    assert.ok(Math.abs(attacked.epsilon - 1 / 255) < 1e-6);
    assert.ok(attacked.robustAccuracy <= record.cleanAccuracy);
    assert.ok(attacked.meanLinf <= attacked.epsilon + 1e-6);

    const job = await glassbox.getJob(record.jobId);
    assert.equal(job.state, pb.JobState.JOB_STATE_SUCCEEDED);
    assert.equal(job.result?.$case, "robustnessEvaluation");
    if (job.result?.$case === "robustnessEvaluation") {
      const report = job.result.value;
      assert.equal(report.images, record.images);
      assert.equal(report.cleanAccuracy, record.cleanAccuracy);
      assert.deepEqual(report.attacks, record.attacks);
      assert.deepEqual(report.warnings, record.warnings);
      assert.equal(report.minimalEpsilon?.median ?? Number.NaN, record.minimalEpsilonMedian);
    }

    assert.deepEqual(await glassbox.getRobustnessHistory(model, { version: "1", limit: 1 }), records);
  });

  it("rejects bad history requests naming the field, and the server keeps serving", async () => {
    await rejectsNaming(glassbox.getRobustnessHistory(model, { limit: 1001 }), status.INVALID_ARGUMENT, "limit");
    await rejectsNaming(glassbox.getRobustnessHistory(""), status.INVALID_ARGUMENT, "model");
    await rejectsNaming(glassbox.getRobustnessHistory("no-such-model"), status.NOT_FOUND, "model");
    assert.equal((await glassbox.getRobustnessHistory(model)).length, 1);
  });
});
