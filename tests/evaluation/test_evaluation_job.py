"""The explanation_evaluation job end to end through the JobService of a real server on the shipped
models, submitted with the typed client helper:

* on `shapes`: Grad-CAM and SmoothGrad point at the object in >= 90% of the images; vanilla gradient's
  rank correlation after full randomisation falls below 0.3 (and the served model is left trained);
  every gradient method's deletion AUC is below the random map's; the verdict lines say so; progress
  states each metric's forward-pass budget before it runs, and the recorded passes match it;
* the same images, each with the corner patch matching its label, explained by `shapes-shortcut` and by
  `shapes`: the report shows the shortcut model's maps on the patch rather than the object, and the
  honest model's on the object with almost no mass on the patch;
* a method's scores and verdict are the same alone, in a list, and wherever it stands in the list;
* a running evaluation is cancelled within seconds.
"""

from __future__ import annotations

import io
import json
import re
import time

import pytest
import torch
from glassbox.demo.shapes import PATCH_SIZE
from glassbox_client import GlassboxClient
from glassbox_client._generated.glassbox.v1 import evaluation_pb2 as pb_eval
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc
from glassbox_client.evaluation import evaluation_spec
from PIL import Image
from safetensors.torch import load_file
from support.paths import MODELS

IMAGES = 32
METHODS = [
    {"method": "saliency", "aggregation": "abs_max"},
    "grad_cam",
    {"method": "smoothgrad", "samples": 8, "aggregation": "abs_max"},
]
OPTIONS = {
    "faithfulness": {"steps": 8},
    "road": {"fractions": [0.2, 0.5, 0.8]},
    "randomisation": {"images": 6},
    "sensitivity": {"samples": 2},
    "example_images": 3,
}
PATCH = {"name": "corner patch", "top": 0, "left": 0, "height": PATCH_SIZE, "width": PATCH_SIZE}


@pytest.fixture(scope="module")
def client(server):
    with GlassboxClient(server.address, timeout=30) as glassbox:
        yield glassbox


@pytest.fixture(scope="module")
def shapes_report(client):
    return client.evaluation.evaluate("shapes", METHODS, images="shapes-val", limit=IMAGES, seed=3, **OPTIONS)


def region(method, name: str):
    return next(score for score in method.localisation if score.region == name)


def test_grad_cam_and_smoothgrad_point_at_the_object(shapes_report) -> None:
    for name in ("grad_cam", "smoothgrad"):
        assert region(shapes_report.methods[name], "object").pointing_hit_rate >= 0.9, name


def test_vanilla_gradient_loses_its_similarity_under_randomisation(shapes_report, server) -> None:
    cascading = shapes_report.methods["saliency"].randomisation.cascading
    assert [step.layer for step in cascading][:2] == ["classifier.2", "features.13"]  # top layer first
    assert cascading[-1].spearman < 0.3
    assert cascading[0].spearman > cascading[-1].spearman
    independent = shapes_report.methods["saliency"].randomisation.independent
    assert len(independent) == len(cascading)
    served = server.server.context.repository.get("shapes", "").module.net.state_dict()
    trained = load_file(str(MODELS / "shapes" / "1" / "model.safetensors"))
    for name, values in trained.items():  # the check randomised a copy: the served model is untouched
        assert torch.equal(served[name].contiguous(), values), name


def test_gradient_methods_delete_faster_than_a_random_map(shapes_report) -> None:
    random_auc = shapes_report.random_reference.deletion.auc
    for method in shapes_report.result.methods:
        assert method.deletion.auc < random_auc, method.name
        assert method.insertion.auc > shapes_report.random_reference.insertion.auc, method.name
        assert len(method.deletion.x) == 9 and method.deletion.x[0] == 0.0 and method.deletion.x[-1] == 1.0


def test_verdicts_json_and_png_agree(shapes_report) -> None:
    for method in shapes_report.result.methods:
        checks = {check.name: check.passed for check in method.checks}
        assert checks["faithfulness"] and checks["localisation"], method.verdict
        assert method.verdict.startswith(f"{method.name}: passed ")
        assert 0.0 <= method.sparseness <= 1.0 and method.max_sensitivity >= 0.0
    assert shapes_report.methods["saliency"].checks[3].name == "randomisation"
    report = shapes_report.report
    assert [m["name"] for m in report["methods"]] == ["saliency", "grad_cam", "smoothgrad"]
    assert report["methods"][1]["deletion"]["auc"] == pytest.approx(
        shapes_report.methods["grad_cam"].deletion.auc
    )
    picture = Image.open(io.BytesIO(shapes_report.result.report_png))
    assert picture.width >= 600 and picture.height >= 4 * 112
    json.dumps(report)


def test_each_metric_states_its_budget_and_keeps_to_it(shapes_report, client) -> None:
    progress = client.jobs.get(shapes_report.job_id).progress
    assert progress.step == progress.total == 5 + 3 * (1 + 7)  # random: 5 steps; each method: maps + 7
    costs = {cost.metric: cost for cost in shapes_report.methods["grad_cam"].costs}
    assert costs["deletion"].budget_forward_passes == IMAGES * 9 == costs["deletion"].forward_passes
    assert costs["road"].budget_forward_passes == IMAGES * 3 == costs["road"].forward_passes
    for method in shapes_report.result.methods:
        costs = {cost.metric: cost for cost in method.costs}
        for metric in ("randomisation", "max_sensitivity"):
            assert costs[metric].forward_passes == costs[metric].budget_forward_passes, (method.name, metric)


def test_progress_names_method_metric_and_budget(server) -> None:
    spec = evaluation_spec(
        "shapes", ["grad_cam"], images="shapes-val", limit=4, metrics=["deletion", "sparseness"], **OPTIONS
    )
    stub = job_service_pb2_grpc.JobServiceStub(server.channel)
    job = stub.SubmitJob(pb.SubmitJobRequest(explanation_evaluation=spec), timeout=30).job
    updates = list(stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=120))
    assert updates[-1].job.state == pb.JOB_STATE_SUCCEEDED
    messages = [u.job.progress.message for u in updates if u.job.state == pb.JOB_STATE_RUNNING]
    budgets = [m for m in messages if "budget" in m]  # a watcher may miss updates, never see wrong ones
    assert budgets and all(
        re.fullmatch(r"(random|grad_cam) · [a-z_]+: budget \d+ forward passes", m) for m in budgets
    )
    assert updates[-1].job.progress.total == 2 + 3  # random: deletion, sparseness; grad_cam: maps + both


def _scores(method: pb_eval.MethodEvaluation) -> pb_eval.MethodEvaluation:
    """The method's scores and verdict, without the metric costs (wall time differs between runs)."""
    scores = pb_eval.MethodEvaluation()
    scores.CopyFrom(method)
    del scores.costs[:]
    return scores


def test_a_methods_scores_do_not_depend_on_the_other_methods(client, shapes_report) -> None:
    """Grad-CAM alone, and Grad-CAM before saliency, score exactly what they score in METHODS (Grad-CAM
    after saliency): the same randomised networks, the same ROAD and sensitivity noise."""
    alone = client.evaluation.evaluate(
        "shapes", ["grad_cam"], images="shapes-val", limit=IMAGES, seed=3, **OPTIONS
    )
    assert _scores(alone.methods["grad_cam"]) == _scores(shapes_report.methods["grad_cam"])
    reordered = client.evaluation.evaluate(
        "shapes", METHODS[:2][::-1], images="shapes-val", limit=IMAGES, seed=3, **OPTIONS
    )
    for name in ("grad_cam", "saliency"):
        assert _scores(reordered.methods[name]) == _scores(shapes_report.methods[name]), name
    assert _scores(alone.random_reference) == _scores(shapes_report.random_reference)


def test_shortcut_model_puts_its_mass_on_the_corner_patch(client, server) -> None:
    """The same images, each with the patch matching its label, explained by both models."""
    patched = server.server.context.repository.dataset("shapes-shortcut", "shapes-val", max_pixels=10**8)
    inline = {
        "images": [image.numpy() for image in patched.images[:16]],
        "labels": [int(label) for label in patched.labels[:16]],
        "masks": [mask.numpy().astype("uint8") * 255 for mask in patched.masks[:16]],
    }
    methods = [
        {"method": "smoothgrad", "samples": 8, "aggregation": "abs_max"},
        {"method": "integrated_gradients", "steps": 16},
    ]
    options = {"metrics": ["pointing_game", "relevance_mass"], "localisation": {"regions": [PATCH]}}
    shortcut = client.evaluation.evaluate("shapes-shortcut", methods, **inline, **options)
    honest = client.evaluation.evaluate("shapes", methods, **inline, **options)
    for name in ("smoothgrad", "integrated_gradients"):
        patch, obj = region(shortcut.methods[name], "corner patch"), region(shortcut.methods[name], "object")
        assert patch.area_fraction == pytest.approx(PATCH_SIZE**2 / 64**2)
        assert patch.pointing_hit_rate >= 0.9 and obj.pointing_hit_rate <= 0.1, name
        density = patch.relevance_mass / patch.area_fraction  # relevance per unit area
        assert density > 5 * obj.relevance_mass / obj.area_fraction, name
        assert "corner patch" in shortcut.methods[name].verdict
        fair_patch, fair_object = (
            region(honest.methods[name], "corner patch"),
            region(honest.methods[name], "object"),
        )
        assert fair_patch.pointing_hit_rate <= 0.1 and fair_patch.relevance_mass < 0.05, name
        assert fair_object.pointing_hit_rate >= 0.8, name


def test_a_running_evaluation_can_be_cancelled(client) -> None:
    job = client.jobs.submit(
        "explanation_evaluation",
        model="shapes",
        images={"named": "shapes-val"},
        methods=[{"smoothgrad": {"samples": 64}}],
        sensitivity={"samples": 64},
    )
    deadline = time.monotonic() + 60
    while client.jobs.get(job.id).progress.step == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    running = client.jobs.cancel(job.id)
    assert running.state == "running" and running.progress.step < running.progress.total
    started = time.monotonic()
    assert client.jobs.wait(job.id, timeout=60).state == "cancelled"
    assert time.monotonic() - started < 10  # cancellation is checked between batches
