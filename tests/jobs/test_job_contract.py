"""The JobService contract, run unchanged against both engines: the in-process engine (worker threads
inside the server) and the Redis engine (RQ queue, a real `glassbox worker` subprocess).

Each engine gets one server with one job slot (one worker thread / one worker process) and a queue of
capacity 1, so a long "blocker" job holds the slot and the tests decide exactly when the next job runs.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from PIL import Image
from support.job_harness import (
    LONG_STEPS,
    MODEL,
    ONNX_MODEL,
    OTHER_MODEL,
    JobClient,
    WorkerProcess,
    class_visualisation,
    write_repository,
)
from support.redis_server import RedisServer
from support.servers import RunningServer

ENGINE_SETTINGS = {
    "worker_threads": 1,
    "queue_capacity": 1,
    "heartbeat_seconds": 0.5,
    "visibility_timeout_seconds": 5,
}


@dataclass
class Engine:
    name: str
    server: RunningServer
    client: JobClient
    start: Callable[..., RunningServer]
    jobs_settings: dict[str, object]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module", params=["in_process", "redis"])
def engine(
    request: pytest.FixtureRequest,
    start_server: Callable[..., RunningServer],
    repository: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Engine]:
    settings: dict[str, object] = dict(ENGINE_SETTINGS)
    worker = None
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        settings.update(redis_url=redis.url, namespace=f"contract-{uuid.uuid4().hex[:8]}")
        log = tmp_path_factory.mktemp("worker") / "worker.log"
        worker = WorkerProcess(redis.url, str(settings["namespace"]), repository, log, heartbeat_seconds=0.5)
    server = start_server(model_repository=repository, jobs=settings)
    if worker is not None:
        worker.wait_ready()
    yield Engine(request.param, server, JobClient(server.channel), start_server, settings)
    if worker is not None:
        worker.stop()


@contextmanager
def blocker(engine: Engine) -> Iterator[pb.Job]:
    """A long job holding the only job slot, running; cancelled on exit."""
    job = engine.client.submit(class_visualisation(LONG_STEPS, seed=99))
    try:
        yield engine.client.wait_running(job.id)
    finally:
        engine.client.cancel(job.id)
        engine.client.wait_finished(job.id)


def wait_for_queue_depth(engine: Engine, expected: float, timeout: float = 10.0) -> float:
    """The server's glassbox_job_queue_depth gauge for class_visualisation, once it shows `expected`
    (the Redis engine refreshes it every heartbeat)."""
    registry = engine.server.server.metrics.registry
    deadline = time.monotonic() + timeout
    while True:
        depth = registry.get_sample_value("glassbox_job_queue_depth", {"kind": "class_visualisation"})
        if depth == expected or time.monotonic() > deadline:
            return depth
        time.sleep(0.1)


def watch(engine: Engine, job_id: str, preview_every_steps: int = 0) -> Iterator[pb.WatchJobResponse]:
    return iter(
        engine.client.stub.WatchJob(
            pb.WatchJobRequest(job_id=job_id, preview_every_steps=preview_every_steps)
        )
    )


def test_a_watched_job_streams_every_step_and_previews_at_the_requested_interval(engine: Engine) -> None:
    with blocker(engine) as running:
        job = engine.client.submit(class_visualisation(12, seed=1))
        assert job.state == pb.JOB_STATE_QUEUED and job.kind == "class_visualisation" and job.model == MODEL
        stream = watch(engine, job.id, preview_every_steps=4)
        first = next(stream)  # the watcher is registered once the first update arrived
        assert first.job.state == pb.JOB_STATE_QUEUED and first.job.id == job.id
    updates = [first, *stream]
    assert engine.client.get(running.id).state == pb.JOB_STATE_CANCELLED

    states = [update.job.state for update in updates]
    assert states[-1] == pb.JOB_STATE_SUCCEEDED
    assert states.index(pb.JOB_STATE_RUNNING) < len(states) - 1
    steps = [update.job.progress.step for update in updates if update.job.state == pb.JOB_STATE_RUNNING]
    assert steps[-12:] == list(range(1, 13)), "every step is streamed, in order"
    assert all(update.job.progress.total == 12 for update in updates if update.job.progress.step)
    previews = {update.job.progress.step: update.preview_png for update in updates if update.preview_png}
    assert sorted(previews) == [4, 8, 12]
    for png in previews.values():
        assert Image.open(io.BytesIO(png)).size == (32, 32)

    final = updates[-1].job
    assert final.progress.step == final.progress.total == 12
    assert final.attempt == 1 and not final.HasField("error")
    assert (
        final.create_time.ToNanoseconds()
        <= final.start_time.ToNanoseconds()
        <= final.finish_time.ToNanoseconds()
    )
    assert final.expire_time.ToNanoseconds() > final.finish_time.ToNanoseconds()
    result = final.class_visualisation
    assert result.label == "star" and result.final_logit > result.initial_logit
    assert Image.open(io.BytesIO(result.image.png)).size == (32, 32)
    assert list(result.image.pixels.shape) == [3, 32, 32]
    assert engine.client.get(job.id).class_visualisation == result, "GetJob returns the same result"


def test_cancelling_a_running_job_stops_it_within_one_step(engine: Engine) -> None:
    with blocker(engine) as running:
        cancelled = engine.client.cancel(running.id)
        assert cancelled.state == pb.JOB_STATE_CANCELLED or cancelled.cancel_requested
        final = engine.client.wait_finished(running.id, timeout=10)
    assert final.state == pb.JOB_STATE_CANCELLED
    assert final.progress.step <= cancelled.progress.step + 1
    assert final.error.code_name == "CANCELLED" and "CancelJob" in final.error.message
    assert not final.HasField("class_visualisation")


def test_a_cancelled_queued_job_never_runs(engine: Engine) -> None:
    with blocker(engine):
        queued = engine.client.submit(class_visualisation(5))
        cancelled = engine.client.cancel(queued.id)
        assert cancelled.state == pb.JOB_STATE_CANCELLED and cancelled.HasField("finish_time")
    time.sleep(0.3)  # the slot is free: a job still queued would start now
    final = engine.client.get(queued.id)
    assert final.state == pb.JOB_STATE_CANCELLED and final.attempt == 0 and not final.HasField("start_time")
    assert engine.client.cancel(queued.id) == final, "cancelling a finished job changes nothing"


def test_a_full_queue_refuses_jobs_with_resource_exhausted(engine: Engine) -> None:
    with blocker(engine):
        waiting = engine.client.submit(class_visualisation(3))
        with pytest.raises(grpc.RpcError) as refused:
            engine.client.submit(class_visualisation(3))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue is full" in refused.value.details()
        assert engine.client.get(waiting.id).state == pb.JOB_STATE_QUEUED, "the server keeps serving"
        assert wait_for_queue_depth(engine, 1) == 1
    assert engine.client.wait_finished(waiting.id).state == pb.JOB_STATE_SUCCEEDED


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (pb.SubmitJobRequest(), grpc.StatusCode.INVALID_ARGUMENT, "spec"),
        (class_visualisation(0), grpc.StatusCode.INVALID_ARGUMENT, "class_visualisation.steps"),
        (
            class_visualisation(5, label="hexagon"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "class_visualisation.target",
        ),
        (
            class_visualisation(5, model="no-such-model"),
            grpc.StatusCode.NOT_FOUND,
            "class_visualisation.model",
        ),
        (
            class_visualisation(5, model=ONNX_MODEL),
            grpc.StatusCode.FAILED_PRECONDITION,
            "class_visualisation.model",
        ),
        (
            pb.SubmitJobRequest(feature_visualisation=gen.FeatureVisualisationSpec(model=MODEL)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "feature_visualisation.objective",
        ),
    ],
    ids=["no-spec", "zero-steps", "unknown-label", "unknown-model", "onnx-model", "no-objective"],
)
def test_a_bad_spec_is_refused_before_anything_is_queued(
    engine: Engine, request_: pb.SubmitJobRequest, code: grpc.StatusCode, field: str
) -> None:
    before = {job.id for job in engine.client.list_all()}
    with pytest.raises(grpc.RpcError) as refused:
        engine.client.submit(request_)
    assert refused.value.code() == code
    assert refused.value.details().startswith(f"{field}")
    assert {job.id for job in engine.client.list_all()} == before, "nothing was queued"


@pytest.mark.parametrize(
    ("call", "code", "field"),
    [
        (lambda c: c.get(""), grpc.StatusCode.INVALID_ARGUMENT, "job_id"),
        (lambda c: c.get("not-an-id"), grpc.StatusCode.INVALID_ARGUMENT, "job_id"),
        (lambda c: c.cancel("0" * 32), grpc.StatusCode.NOT_FOUND, "job_id"),
        (
            lambda c: next(iter(c.stub.WatchJob(pb.WatchJobRequest(job_id="0" * 32)))),
            grpc.StatusCode.NOT_FOUND,
            "job_id",
        ),
        (
            lambda c: next(
                iter(c.stub.WatchJob(pb.WatchJobRequest(job_id="0" * 32, preview_every_steps=-1)))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "preview_every_steps",
        ),
        (lambda c: c.list_all(page_size=100_000), grpc.StatusCode.INVALID_ARGUMENT, "page_size"),
        (lambda c: c.list_all(page_token="garbage!"), grpc.StatusCode.INVALID_ARGUMENT, "page_token"),
        (
            lambda c: c.list_all(states=[pb.JOB_STATE_UNSPECIFIED]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "states[0]",
        ),
        (lambda c: c.list_all(kind="knitting"), grpc.StatusCode.INVALID_ARGUMENT, "kind"),
    ],
    ids=[
        "empty-id",
        "malformed-id",
        "unknown-id",
        "watch-unknown",
        "bad-preview",
        "page-size",
        "token",
        "state",
        "kind",
    ],
)
def test_bad_requests_name_the_field_and_the_server_keeps_serving(
    engine: Engine, call: Callable[[JobClient], object], code: grpc.StatusCode, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        call(engine.client)
    assert refused.value.code() == code
    assert refused.value.details().startswith(f"{field}:")
    assert isinstance(engine.client.list_all(page_size=1), list)


def test_list_filters_by_state_kind_and_model_and_pages_newest_first(engine: Engine) -> None:
    jobs = []
    for request in (
        class_visualisation(2, seed=11),
        class_visualisation(2, model=OTHER_MODEL),
        class_visualisation(2),
    ):
        jobs.append(engine.client.submit(request))  # one at a time: the queue holds one job
        engine.client.wait_finished(jobs[-1].id)
    other = jobs[1]

    everything = engine.client.list_all(page_size=1000)
    assert {job.id for job in jobs} <= {job.id for job in everything}
    created = [job.create_time.ToNanoseconds() for job in everything]
    assert created == sorted(created, reverse=True), "newest first"
    assert all(not job.WhichOneof("result") for job in everything), "listing leaves results out"

    paged = engine.client.list_all(page_size=2)
    assert [job.id for job in paged] == [job.id for job in everything], "pages add up to the whole list"
    first = engine.client.stub.ListJobs(pb.ListJobsRequest(page_size=2))
    assert len(first.jobs) == 2 and first.next_page_token

    def expect(selected: list[pb.Job], keep: Callable[[pb.Job], bool]) -> None:
        assert [job.id for job in selected] == [job.id for job in everything if keep(job)]

    succeeded = engine.client.list_all(states=[pb.JOB_STATE_SUCCEEDED], page_size=1)
    expect(succeeded, lambda job: job.state == pb.JOB_STATE_SUCCEEDED)
    assert {job.id for job in jobs} <= {job.id for job in succeeded}
    finished = [pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_CANCELLED]
    expect(engine.client.list_all(states=finished), lambda job: job.state in finished)
    expect(engine.client.list_all(model=OTHER_MODEL), lambda job: job.model == OTHER_MODEL)
    assert [job.id for job in engine.client.list_all(model=OTHER_MODEL)] == [other.id]
    expect(engine.client.list_all(kind="class_visualisation"), lambda job: job.kind == "class_visualisation")
    assert engine.client.list_all(kind="style_transfer") == []


def test_a_job_is_deterministic_given_its_seed(engine: Engine) -> None:
    results = []
    for seed in (5, 5, 6):
        job = engine.client.submit(class_visualisation(4, seed=seed))
        results.append(engine.client.wait_finished(job.id).class_visualisation.image.pixels)
    assert results[0].data == results[1].data
    pixels = [np.frombuffer(result.data, dtype="<f4") for result in results]
    assert not np.array_equal(pixels[0], pixels[2]), "another seed, another image"


def test_a_finished_job_is_forgotten_after_the_result_ttl(engine: Engine, repository: Path) -> None:
    server = engine.start(
        model_repository=repository, jobs={**engine.jobs_settings, "result_ttl_seconds": 1.0}
    )
    client = JobClient(server.channel)
    job = client.submit(class_visualisation(2))
    final = client.wait_finished(job.id)
    assert final.state == pb.JOB_STATE_SUCCEEDED
    ttl = final.expire_time.ToNanoseconds() - final.finish_time.ToNanoseconds()
    assert ttl == pytest.approx(1e9, abs=1e6)
    time.sleep(max(0.0, final.expire_time.ToNanoseconds() / 1e9 - time.time()) + 0.2)
    for call in (
        client.get,
        client.cancel,
        lambda job_id: next(iter(client.stub.WatchJob(pb.WatchJobRequest(job_id=job_id)))),
    ):
        with pytest.raises(grpc.RpcError) as gone:
            call(job.id)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        assert gone.value.details().startswith("job_id:")
    assert job.id not in {listed.id for listed in client.list_all()}


def test_a_job_running_past_max_run_seconds_fails(engine: Engine, repository: Path) -> None:
    server = engine.start(model_repository=repository, jobs={**engine.jobs_settings, "max_run_seconds": 1})
    client = JobClient(server.channel)
    job = client.submit(class_visualisation(LONG_STEPS))
    final = client.wait_finished(job.id, timeout=30)
    assert final.state == pb.JOB_STATE_FAILED and final.progress.step > 0
    assert final.error.code_name == "RESOURCE_EXHAUSTED"
    assert "ran longer than jobs.max_run_seconds (1 s)" in final.error.message
    assert final.finish_time.ToNanoseconds() - final.start_time.ToNanoseconds() >= 1e9, "not stopped early"
