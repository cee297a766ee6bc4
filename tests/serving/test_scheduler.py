"""The compute scheduler in-process: order (priority, least remaining work), dynamic batching equal to
the unbatched result per method family, deadlines and cancellation leaving the queue, each admission
refusal. Deterministic: a `Gate` call holds the compute thread while the test queues the calls it needs.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from glassbox.config import SchedulerSettings, Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import Cancelled, InvalidArgument, ResourceExhausted
from glassbox.core.images import DECODE_BYTES_PER_PIXEL, PreparedImage, decoded_bytes
from glassbox.methods.base import MethodChoice, NoParams
from glassbox.methods.cam import CamLayerParams
from glassbox.methods.grad_cam import GradCamParams
from glassbox.methods.occlusion import OcclusionParams
from glassbox.methods.service import (
    AttributionImage,
    AttributionRequest,
    OutputOptions,
    attribute,
    plan_attribution,
)
from glassbox.methods.smoothgrad import SmoothGradParams
from glassbox.methods.targets import TargetSpec
from glassbox.models.repository import ModelRepository
from glassbox.serving import ComputeScheduler, Estimate, Priority
from glassbox.serving import scheduler as scheduler_module
from glassbox.serving.cost import UnitCost
from glassbox.serving.predict import top_k
from PIL import Image
from support.paths import MODELS


@dataclass
class Recorder:
    """A SchedulerObserver that keeps what it was told."""

    batches: list[tuple[str, int, int]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def observe_queue_time(self, model: str, priority: str, seconds: float) -> None:
        pass

    def observe_batch_rows(self, model: str, kind: str, calls: int, rows: int) -> None:
        self.batches.append((kind, calls, rows))

    def set_scheduler_calls(self, priority: str, running: int, waiting_units: int) -> None:
        pass

    def observe_call_cost(self, model: str, label: str, estimated: float, measured: float) -> None:
        pass

    def count_admission_refused(self, reason: str) -> None:
        self.refused.append(reason)


class Gate:
    """A call that holds the compute thread until opened, so calls submitted meanwhile queue up."""

    def __init__(self, scheduler: ComputeScheduler, priority: Priority = Priority.INTERACTIVE) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.future = scheduler.submit(self._hold, model=None, estimate=None, priority=priority, label="gate")
        assert self.entered.wait(10)

    def _hold(self) -> None:
        self.entered.set()
        assert self.opened.wait(10)

    def open(self) -> None:
        self.opened.set()
        self.future.result(timeout=10)


@pytest.fixture(scope="module")
def model():
    repository = ModelRepository(MODELS, device=torch.device("cpu"))
    repository.load_all()
    return repository.get("shapes", "")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def scheduler(recorder: Recorder) -> Iterator[ComputeScheduler]:
    scheduler = ComputeScheduler(SchedulerSettings(), device=torch.device("cpu"), observer=recorder)
    yield scheduler
    scheduler.close()


def images(count: int, seed: int = 0) -> list[AttributionImage]:
    generator = torch.Generator().manual_seed(seed)
    return [
        AttributionImage(PreparedImage(torch.rand(3, 64, 64, generator=generator), (64, 64), None))
        for _ in range(count)
    ]


TOP_1 = TargetSpec()


def request(method: str, params: object, targets: TargetSpec = TOP_1) -> AttributionRequest:
    return AttributionRequest("shapes", "1", method, params, targets, output=OutputOptions(map=True))


def maps(outcome) -> np.ndarray:
    return np.stack([a.map for image in outcome.images for a in image.attributions])


FAMILIES = {
    "saliency": (NoParams(), TargetSpec(top_k=2)),
    "guided_backprop": (NoParams(), TargetSpec()),
    "smoothgrad": (SmoothGradParams(samples=6, base=MethodChoice("saliency", NoParams())), TargetSpec()),
    "occlusion": (OcclusionParams(window=16, stride=8), TargetSpec(class_indices=(1, 4))),
    "grad_cam": (GradCamParams(), TargetSpec(top_k=2)),
    "grad_cam_plus_plus": (CamLayerParams(layer="features.10"), TargetSpec()),
}


@pytest.mark.parametrize("method", sorted(FAMILIES))
def test_a_batched_call_equals_the_unbatched_call(
    model, scheduler: ComputeScheduler, recorder: Recorder, method: str
) -> None:
    """Calls queued together run as merged batches; each map equals the same call run alone."""
    params, targets = FAMILIES[method]
    settings = Settings()
    inputs = [images(1, seed) for seed in range(4)]
    alone = [
        attribute(model, request(method, params, targets), x, CancellationToken(), settings) for x in inputs
    ]
    gate = Gate(scheduler)
    futures = [
        scheduler.submit(
            lambda x=x: attribute(model, request(method, params, targets), x, CancellationToken(), settings),
            model=model,
            estimate=Estimate(forward_rows=1),
        )
        for x in inputs
    ]
    gate.open()
    batched = [future.result(timeout=60) for future in futures]
    assert max(calls for _, calls, _ in recorder.batches) > 1, recorder.batches
    for one, together in zip(alone, batched, strict=True):
        expected, got = maps(one), maps(together)
        expected_targets = [a.target for i in one.images for a in i.attributions]
        got_targets = [a.target for i in together.images for a in i.attributions]
        # A batch rounds a logit at the scale of the largest logit, not at its own (a logit near 0 can
        # move by 1e-5 of it); occlusion's map is a difference of outputs, rounded at that scale too.
        logit_scale = max(abs(t.logit) for t in expected_targets)
        map_scale = max(np.abs(expected).max(), logit_scale if method == "occlusion" else 0.0, 1e-12)
        assert np.abs(got - expected).max() <= 1e-6 * map_scale
        assert [t.index for t in expected_targets] == [t.index for t in got_targets]
        assert [t.logit for t in got_targets] == pytest.approx(
            [t.logit for t in expected_targets], rel=1e-5, abs=1e-5 * logit_scale
        )


def test_predicts_queued_together_run_as_one_forward(model, scheduler: ComputeScheduler, recorder) -> None:
    pixels = [torch.stack([image.prepared.pixels for image in images(2, seed)]) for seed in range(5)]
    alone = [top_k(model, x, 3) for x in pixels]
    gate = Gate(scheduler)
    futures = [
        scheduler.submit(lambda x=x: top_k(model, x, 3), model=model, estimate=Estimate(forward_rows=2))
        for x in pixels
    ]
    gate.open()
    together = [future.result(timeout=30) for future in futures]
    assert ("forward", 5, 10) in recorder.batches
    for one, other in zip(alone, together, strict=True):
        assert [[s.index for s in row] for row in one] == [[s.index for s in row] for row in other]
        for a, b in zip(one, other, strict=True):
            assert [s.logit for s in a] == pytest.approx([s.logit for s in b], rel=1e-5, abs=1e-5)


def test_only_a_call_s_first_unit_waits_for_others_to_join(
    model, scheduler: ComputeScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone call's first unit waits the batching delay for company; its later units do not (arrivals
    join its next unit anyway), or a call of many small units would pay the delay at every one."""
    delay = 0.5
    monkeypatch.setattr(scheduler_module, "batching_limits", lambda _model: (16, delay))
    pixels = images(1)[0].prepared.pixels[None]
    finished: list[float] = []

    def four_units() -> None:
        for _ in range(4):
            top_k(model, pixels, 1)
            finished.append(time.monotonic())

    submitted = time.monotonic()
    scheduler.submit(four_units, model=model, estimate=Estimate(forward_rows=4)).result(timeout=30)
    assert finished[0] - submitted >= delay
    assert finished[-1] - finished[0] < delay  # three one-row forwards, no wait between them


def stepper(log: list[str], name: str, steps: int, token: CancellationToken, pause: threading.Event | None):
    def work() -> str:
        for step in range(steps):
            if pause is not None and step == 2:
                assert pause.wait(10)
            log.append(f"{name}{step}")
            token.check()  # a yield point: the scheduler may serve another call here
        return name

    return work


def seeded(scheduler: ComputeScheduler, model, seconds_per_row: float = 0.01) -> None:
    """Give the cost model a known forward cost, so estimates are rows × `seconds_per_row`."""
    scheduler.cost.observe_unit(model, "forward", 1, seconds_per_row)


def test_a_short_call_waits_at_most_one_unit_of_a_long_one(model, scheduler: ComputeScheduler) -> None:
    seeded(scheduler, model)
    log: list[str] = []
    pause, token = threading.Event(), CancellationToken()
    long = scheduler.submit(
        stepper(log, "long", 6, token, pause), model=model, estimate=Estimate(forward_rows=1000)
    )
    while "long1" not in log:
        time.sleep(0.001)
    short = scheduler.submit(
        stepper(log, "short", 1, token, None), model=model, estimate=Estimate(forward_rows=1)
    )
    pause.set()
    assert short.result(timeout=10) == "short" and long.result(timeout=10) == "long"
    assert log == ["long0", "long1", "long2", "short0", "long3", "long4", "long5"]


def test_interactive_calls_go_before_background_work(model) -> None:
    """Strict priority when background work is not owed its minimum share (here: none is set)."""
    scheduler = ComputeScheduler(SchedulerSettings(background_min_share=0.0), device=torch.device("cpu"))
    try:
        log: list[str] = []
        token = CancellationToken()
        gate = Gate(scheduler)
        job = scheduler.submit(
            stepper(log, "job", 3, token, None), model=None, estimate=None, priority=Priority.BACKGROUND
        )
        call = scheduler.submit(
            stepper(log, "call", 3, token, None), model=model, estimate=Estimate(forward_rows=1)
        )
        gate.open()
        job.result(timeout=10), call.result(timeout=10)
        assert log == ["call0", "call1", "call2", "job0", "job1", "job2"]
    finally:
        scheduler.close()


def test_background_work_keeps_its_minimum_share(model, scheduler: ComputeScheduler) -> None:
    """Under a stream of interactive work, a job still advances (background_min_share)."""
    log: list[str] = []
    token, stop = CancellationToken(), threading.Event()

    def busy() -> None:
        while not stop.is_set():
            time.sleep(0.002)
            token.check()

    interactive = scheduler.submit(busy, model=None, estimate=None, label="busy")
    job = scheduler.submit(
        stepper(log, "job", 5, token, None), model=None, estimate=None, priority=Priority.BACKGROUND
    )
    assert job.result(timeout=20) == "job"
    stop.set()
    interactive.result(timeout=10)


def test_a_cancelled_call_leaves_the_queue_without_running(scheduler: ComputeScheduler) -> None:
    ran = threading.Event()
    token = CancellationToken()
    gate = Gate(scheduler)
    future = scheduler.submit(ran.set, model=None, estimate=None, token=token)
    token.cancel()
    gate.open()
    with pytest.raises(Cancelled, match="before it started"):
        future.result(timeout=10)
    assert not ran.is_set()


def test_a_call_whose_deadline_passes_in_the_queue_never_runs(scheduler: ComputeScheduler) -> None:
    ran = threading.Event()
    gate = Gate(scheduler)
    future = scheduler.submit(ran.set, model=None, estimate=None, deadline=time.monotonic() + 0.05)
    time.sleep(0.1)
    gate.open()
    with pytest.raises(Cancelled, match="deadline passed"):
        future.result(timeout=10)
    assert not ran.is_set()


def test_a_running_call_stops_within_one_unit_when_cancelled(scheduler: ComputeScheduler) -> None:
    token = CancellationToken()
    steps: list[int] = []

    def forever() -> None:
        while True:
            steps.append(len(steps))
            token.check()

    future = scheduler.submit(forever, model=None, estimate=None, token=token)
    while len(steps) < 10:
        time.sleep(0.001)
    token.cancel()
    with pytest.raises(Cancelled):
        future.result(timeout=10)
    stopped_at = len(steps)
    time.sleep(0.05)
    assert len(steps) == stopped_at


def test_a_call_that_cannot_finish_before_its_deadline_is_refused_at_once(
    model, scheduler: ComputeScheduler, recorder: Recorder
) -> None:
    seeded(scheduler, model, 0.01)
    ran = threading.Event()
    with pytest.raises(ResourceExhausted) as refused:
        scheduler.submit(
            ran.set, model=model, estimate=Estimate(forward_rows=500), deadline=time.monotonic() + 1.0
        )
    assert not ran.is_set() and scheduler.load() == {"interactive": 0.0, "background": 0.0}
    assert "deadline" in str(refused.value) and refused.value.retry_after_seconds is not None
    assert recorder.refused == ["deadline"]


def test_work_beyond_the_queue_bound_is_refused(model, recorder: Recorder) -> None:
    scheduler = ComputeScheduler(
        SchedulerSettings(max_queue_seconds=2.0), device=torch.device("cpu"), observer=recorder
    )
    try:
        seeded(scheduler, model, 0.01)
        gate = Gate(scheduler)
        first = scheduler.submit(lambda: 1, model=model, estimate=Estimate(forward_rows=150))
        with pytest.raises(ResourceExhausted, match="max_queue_seconds"):
            scheduler.submit(lambda: 2, model=model, estimate=Estimate(forward_rows=100))
        gate.open()
        assert first.result(timeout=10) == 1
        assert recorder.refused == ["queue"]
    finally:
        scheduler.close()


def test_calls_over_the_memory_budget_are_refused(model, recorder: Recorder) -> None:
    scheduler = ComputeScheduler(
        SchedulerSettings(memory_budget_bytes=1000), device=torch.device("cpu"), observer=recorder
    )
    try:
        with pytest.raises(ResourceExhausted, match="whole memory budget"):
            scheduler.submit(lambda: 0, model=model, estimate=Estimate(memory_bytes=2000))
        gate = Gate(scheduler)
        held = scheduler.submit(lambda: 1, model=model, estimate=Estimate(memory_bytes=800))
        with pytest.raises(ResourceExhausted, match="memory budget is full") as refused:
            scheduler.submit(lambda: 2, model=model, estimate=Estimate(memory_bytes=800))
        assert refused.value.retry_after_seconds is not None
        gate.open()
        assert held.result(timeout=10) == 1
        assert scheduler.submit(lambda: 3, model=model, estimate=Estimate(memory_bytes=800)).result(10) == 3
        with scheduler.holding(600), pytest.raises(ResourceExhausted, match="memory budget is full"):
            scheduler.submit(lambda: 4, model=model, estimate=Estimate(memory_bytes=600))
        assert scheduler.submit(lambda: 5, model=model, estimate=Estimate(memory_bytes=600)).result(10) == 5
        assert recorder.refused == ["memory", "memory", "memory"]

    finally:
        scheduler.close()


def test_decoding_memory_is_read_from_the_headers() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (100, 50)).save(buffer, format="PNG")
    pixels = np.zeros((20, 10, 3), dtype=np.uint8)
    assert decoded_bytes([buffer.getvalue()]) == DECODE_BYTES_PER_PIXEL * 5000
    assert decoded_bytes([b"not an image"]) == 0
    assert decoded_bytes([pixels]) == pixels.nbytes + 24 * 200


def test_a_response_over_the_message_limit_is_refused_before_any_work(model) -> None:
    settings = Settings(limits={"max_message_bytes": 1_000_000})
    big = [AttributionImage(PreparedImage(torch.rand(3, 64, 64), (2000, 2000), None)) for _ in range(1)]
    options = OutputOptions(map=True, original_size=True)
    with pytest.raises(InvalidArgument) as refused:
        plan_attribution(
            model, AttributionRequest("shapes", "1", "saliency", NoParams(), output=options), big, settings
        )
    assert refused.value.field == "output.original_size"
    small = plan_attribution(
        model, AttributionRequest("shapes", "1", "saliency", NoParams()), images(2), settings
    )
    assert small.backward_rows == 2 and small.response_bytes == 2 * 64 * 64 * 4


def test_estimates_count_each_method_s_passes(model) -> None:
    settings = Settings()
    plan = plan_attribution(
        model,
        request("occlusion", OcclusionParams(window=16, stride=8), TargetSpec(top_k=2)),
        images(3),
        settings,
    )
    assert plan.forward_rows == 3 * (1 + 49) and plan.backward_rows == 0
    plan = plan_attribution(
        model,
        request("smoothgrad", SmoothGradParams(samples=10), TargetSpec(top_k=2)),
        images(2),
        settings,
    )
    assert plan.forward_rows == 2 and plan.backward_rows == 2 * 2 * 10


def test_ablated_passes_are_priced_as_their_own_unit_kind(
    model, scheduler: ComputeScheduler, recorder: Recorder
) -> None:
    """Ablation-CAM's passes run from the CAM layer onwards. Counted as whole forwards, a call was
    estimated at hundreds of times its cost on resnet18 (refused on a loaded server) and its cheap units
    made every later forward look cheap: they are their own kind, planned and learnt apart."""
    ablation = request("ablation_cam", CamLayerParams(), TargetSpec(top_k=2))
    plan = plan_attribution(model, ablation, images(3), Settings())
    assert (plan.forward_rows, plan.backward_rows, plan.replaced_rows) == (3, 0, 3 * 128)
    future = scheduler.submit(
        lambda: attribute(model, ablation, images(1), CancellationToken(), Settings()),
        model=model,
        estimate=plan,
    )
    future.result(timeout=60)
    kinds = {kind for kind, _, _ in recorder.batches}
    assert kinds == {"forward", "layer_replacement"}, recorder.batches
    forward, replaced = (scheduler.cost.unit_cost(model, kind) for kind in ("forward", "layer_replacement"))
    assert forward is not None and replaced is not None and replaced is not forward


def test_unit_costs_separate_the_fixed_cost_from_the_per_row_cost() -> None:
    """1-row units cost mostly their fixed part; a 64-row batch must not be priced at 64 × that."""
    cost = UnitCost()
    for rows in (1, 64, 1, 1, 32, 1, 64, 1):
        cost.add(rows, 0.001 + 0.0001 * rows)
    assert cost.fixed == pytest.approx(0.001, rel=1e-6) and cost.per_row == pytest.approx(0.0001, rel=1e-6)
    only_one_size = UnitCost()
    only_one_size.add(4, 0.02)
    assert only_one_size.fixed == 0.0 and only_one_size.per_row == pytest.approx(0.005)


def test_an_admitted_call_meets_its_deadline_under_a_stream_of_shorter_calls(model) -> None:
    """Shorter calls go first, but not past the point where an admitted call would miss its deadline."""
    scheduler = ComputeScheduler(SchedulerSettings(), device=torch.device("cpu"))
    try:
        seeded(scheduler, model, 0.01)
        token, stop = CancellationToken(), threading.Event()

        def sleeper(steps: int, seconds: float):
            def work() -> None:
                for _ in range(steps):
                    time.sleep(seconds)
                    token.check()

            return work

        def flood() -> None:
            while not stop.is_set():
                scheduler.submit(sleeper(1, 0.01), model=model, estimate=Estimate(forward_rows=1))
                time.sleep(0.004)

        flooding = threading.Thread(target=flood)
        flooding.start()
        time.sleep(0.1)
        deadline = time.monotonic() + 1.0
        long = scheduler.submit(
            sleeper(10, 0.02), model=model, estimate=Estimate(forward_rows=20), deadline=deadline
        )
        long.result(timeout=10)
        assert time.monotonic() < deadline
        stop.set()
        flooding.join()
    finally:
        scheduler.close()
