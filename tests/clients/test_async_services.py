"""`AsyncGlassboxClient.inspection`, `.robustness` and `.evaluation` over a real server: every call returns
the same typed result as the synchronous client for the same request (jobs compared without their id and
timings), bad input is refused naming the field and the server keeps serving, and cancelling the task
that awaits an evaluation cancels its job."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest
from glassbox.demo.shapes import generate
from glassbox_client import AsyncGlassboxClient, GlassboxClient, InvalidArgumentError, NotFoundError
from glassbox_client.evaluation import ExplanationReport
from glassbox_client.robustness_results import RobustnessReport
from support.model_repository import copy_shipped_model, monitoring_section
from support.servers import RunningServer

T = TypeVar("T")
MONITORING = monitoring_section()
ROBUSTNESS = {
    "images": "shapes-val",
    "limit": 12,
    "seed": 5,
    "attacks": ["fgsm"],
    "epsilons": [2 / 255, 8 / 255],
    "corruptions": [{"corruption": "jpeg", "severities": [3]}],
    "minimal_epsilon": {"attack_index": 0, "iterations": 3},
    "examples": 1,
}
EVALUATION = {
    "images": "shapes-val",
    "limit": 8,
    "seed": 3,
    "metrics": ["deletion", "pointing_game", "sparseness"],
    "faithfulness": {"steps": 4},
    "example_images": 1,
}


@pytest.fixture(scope="module")
def running(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    root = tmp_path_factory.mktemp("models")
    copy_shipped_model(root, "shapes", extra_toml=MONITORING)
    return start_server(model_repository=root, robustness={"check_interval_seconds": 0.3})


@pytest.fixture(scope="module")
def client(running: RunningServer) -> Iterator[GlassboxClient]:
    with GlassboxClient(running.address, timeout=60) as glassbox:
        yield glassbox


@pytest.fixture(scope="module")
def shapes() -> list[np.ndarray]:
    """Four demo images, float [3, H, W] in [0, 1]."""
    return [image.numpy() for image in generate(4, seed=11).images]


def awaited(running: RunningServer, call: Callable[[AsyncGlassboxClient], Awaitable[T]]) -> T:
    """`call` on a fresh asyncio client, inside its own event loop."""

    async def scenario() -> T:
        async with AsyncGlassboxClient(running.address, timeout=60) as glassbox:
            return await call(glassbox)

    return asyncio.run(scenario())


def without_timings(value: Any) -> Any:
    """A parsed JSON report with every wall-clock figure (keys naming seconds or time) left out."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if "seconds" not in k and "time" not in k}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def comparable_robustness(report: RobustnessReport) -> dict[str, Any]:
    """The report as nested fields without job id and timings (compare with np.testing.assert_equal: NaN
    equals NaN)."""
    timeless = dataclasses.replace(report, job_id="", wall_seconds=0.0, json=without_timings(report.json))
    return dataclasses.asdict(timeless)


def comparable_evaluation(report: ExplanationReport) -> tuple[Any, dict[str, Any], bytes]:
    result = type(report.result)()
    result.CopyFrom(report.result)
    for method in [*result.methods, result.random_reference]:
        for cost in method.costs:
            cost.seconds = 0.0
    result.ClearField("report_json")
    result.ClearField("report_png")
    return result, without_timings(report.report), np.asarray(report.png).tobytes()


def test_filters_equal_the_sync_clients(running: RunningServer, client: GlassboxClient) -> None:
    for layer, view in (("", None), ("features.8", "per_input_channel")):
        mine = awaited(
            running,
            lambda g, layer=layer, view=view: g.inspection.filters(model="shapes", layer=layer, view=view),
        )
        theirs = client.inspection.filters(model="shapes", layer=layer, view=view)
        assert (mine.layer, mine.view, mine.grid_rows, mine.grid_columns) == (
            theirs.layer,
            theirs.view,
            theirs.grid_rows,
            theirs.grid_columns,
        )
        np.testing.assert_array_equal(mine.weights, theirs.weights)
        assert mine.grid == theirs.grid and mine.weights.ndim == 4


def test_activations_equal_the_sync_clients(
    running: RunningServer, client: GlassboxClient, shapes: list[np.ndarray]
) -> None:
    mine = awaited(
        running, lambda g: g.inspection.activations(shapes[1], model="shapes", layer="features.14", top_k=4)
    )
    theirs = client.inspection.activations(shapes[1], model="shapes", layer="features.14", top_k=4)
    assert mine.channels == theirs.channels and len(mine.channels) == 4
    assert mine.layer_channels == theirs.layer_channels and mine.grid == theirs.grid
    np.testing.assert_array_equal(mine.maps, theirs.maps)


def test_embed_equals_the_sync_clients_and_runs_concurrently(
    running: RunningServer, client: GlassboxClient, shapes: list[np.ndarray]
) -> None:
    async def each_alone_and_batched(glassbox: AsyncGlassboxClient) -> tuple[list[Any], Any]:
        singles = await asyncio.gather(
            *(glassbox.inspection.embed(image, model="shapes", pooling="max") for image in shapes)
        )
        return singles, await glassbox.inspection.embed(shapes, model="shapes", pooling="max")

    singles, batch = awaited(running, each_alone_and_batched)
    theirs = client.inspection.embed(shapes, model="shapes", pooling="max")
    assert (batch.layer, batch.pooling) == (theirs.layer, theirs.pooling) == ("classifier.1", "max")
    np.testing.assert_array_equal(batch.vectors, theirs.vectors)
    assert batch.vectors.shape == (4, 128)
    stacked = np.concatenate([single.vectors for single in singles])
    np.testing.assert_allclose(stacked, batch.vectors, rtol=1e-4, atol=1e-5)


def test_robustness_evaluate_equals_the_sync_clients(running: RunningServer, client: GlassboxClient) -> None:
    mine = awaited(running, lambda g: g.robustness.evaluate("shapes", timeout=120, **ROBUSTNESS))
    theirs = client.robustness.evaluate("shapes", timeout=120, **ROBUSTNESS)
    assert mine.job_id != theirs.job_id and mine.images == 12
    assert [(a.attack, round(a.epsilon * 255)) for a in mine.attacks] == [("fgsm", 2), ("fgsm", 8)]
    np.testing.assert_equal(comparable_robustness(mine), comparable_robustness(theirs))


def test_evaluation_evaluate_equals_the_sync_clients(running: RunningServer, client: GlassboxClient) -> None:
    methods = [{"method": "saliency", "aggregation": "abs_max"}]
    mine = awaited(running, lambda g: g.evaluation.evaluate("shapes", methods, timeout=120, **EVALUATION))
    theirs = client.evaluation.evaluate("shapes", methods, timeout=120, **EVALUATION)
    assert mine.job_id != theirs.job_id and list(mine.methods) == ["saliency"]
    assert mine.result.images == 8 and mine.methods["saliency"].deletion.auc > 0
    assert comparable_evaluation(mine) == comparable_evaluation(theirs)


def test_robustness_history_equals_the_sync_clients(running: RunningServer, client: GlassboxClient) -> None:
    deadline = time.monotonic() + 60
    while not client.robustness.history("shapes") and time.monotonic() < deadline:
        time.sleep(0.3)
    mine = awaited(running, lambda g: g.robustness.history("shapes"))
    theirs = client.robustness.history("shapes")
    assert len(mine) == 1 and math.isnan(mine[0].minimal_epsilon_median)
    np.testing.assert_equal([dataclasses.asdict(r) for r in mine], [dataclasses.asdict(r) for r in theirs])
    assert (mine[0].trigger, mine[0].images, [a.attack for a in mine[0].attacks]) == (
        "new_version",
        4,
        ["fgsm"],
    )
    assert awaited(running, lambda g: g.robustness.history("shapes", version="2")) == []


def test_bad_input_is_named_and_the_server_keeps_serving(running: RunningServer) -> None:
    async def refused(glassbox: AsyncGlassboxClient) -> list[str | None]:
        fields = []
        calls = [
            glassbox.inspection.activations(np.zeros((64, 64, 3), np.uint8), model="shapes", layer="nope"),
            glassbox.inspection.embed([], model="shapes"),
            glassbox.robustness.evaluate("shapes", images="shapes-val", attacks=["fgsm"], epsilons=[1.5]),
            glassbox.evaluation.evaluate("shapes", ["saliency"], images="shapes-val", limit=-1),
        ]
        for call in calls:
            with pytest.raises(InvalidArgumentError) as error:
                await call
            fields.append(error.value.field)
        with pytest.raises(NotFoundError):
            await glassbox.robustness.history("missing")
        fields.append(await glassbox.health())
        return fields

    assert awaited(running, refused) == [
        "layer",
        "images",
        "robustness_evaluation.attacks[0].epsilons[0]",
        "explanation_evaluation.images.limit",
        "SERVING",
    ]


def test_cancelling_the_awaiting_task_cancels_the_job(running: RunningServer, client: GlassboxClient) -> None:
    async def cancel_midway(glassbox: AsyncGlassboxClient) -> None:
        methods = [{"method": "smoothgrad", "samples": 32}]  # a few seconds of work: ample time to cancel
        task = asyncio.create_task(
            glassbox.evaluation.evaluate("shapes", methods, images="shapes-val", limit=240)
        )
        while not [
            job async for job in glassbox.jobs.list(kind="explanation_evaluation", states=["running"])
        ]:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    awaited(running, cancel_midway)
    deadline = time.monotonic() + 30
    while list(client.jobs.list(kind="explanation_evaluation", states=["queued", "running"])):
        assert time.monotonic() < deadline, "the cancelled evaluation is still running"
        time.sleep(0.1)
    states = [job.state for job in client.jobs.list(kind="explanation_evaluation")]
    assert states[0] == "cancelled" and client.health() == "SERVING"


def test_a_task_cancelled_while_submitting_cancels_the_job_it_queued(
    running: RunningServer, client: GlassboxClient
) -> None:
    """The server may queue the job before its answer reaches the client: cancelling the task during
    SubmitJob must not leave that job running for nobody."""
    before = {job.id for job in client.jobs.list(kind="explanation_evaluation")}

    async def cancel_at_once(glassbox: AsyncGlassboxClient) -> None:
        methods = [{"method": "smoothgrad", "samples": 32}]
        task = asyncio.create_task(
            glassbox.evaluation.evaluate("shapes", methods, images="shapes-val", limit=240)
        )
        await asyncio.sleep(0)  # the task starts and sends SubmitJob; its answer has not arrived yet
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    awaited(running, cancel_at_once)
    (job,) = [job for job in client.jobs.list(kind="explanation_evaluation") if job.id not in before]
    assert client.jobs.wait(job.id, timeout=60).state == "cancelled"
