"""Open streams cost a coroutine, not a thread: 64 Health.Watch and 64 WatchJob streams held open (on a
server with only 2 blocking-I/O threads; half the job streams watch a running job, half a queued one
that does not change) leave ListModels, Health.Check, GetJob and a Predict answering within a bounded
deadline, and every WatchJob stream still sees its job's progress and final state.

Not a timing benchmark: the deadlines are generous and only a server that parked a thread per stream
(as the synchronous server did) would miss them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
from glassbox_client._generated.glassbox.v1 import (
    generative_pb2,
    job_service_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
    tensor_pb2,
)
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as job_pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.model_repository import write_model_version
from support.servers import RunningServer

STREAMS = 64
ANSWER_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def running(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "net", "1")
    return start_server(
        model_repository=root, worker_threads=2, jobs={"worker_threads": 1}, robustness={"monitoring": False}
    )


@pytest.fixture
def health_watches(running: RunningServer) -> Iterator[list[grpc.Future]]:
    stub = health_pb2_grpc.HealthStub(running.channel)
    watches = [stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=120) for _ in range(STREAMS)]
    yield watches
    for watch in watches:
        watch.cancel()


def predict_request() -> model_service_pb2.PredictRequest:
    pixels = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32)
    image = tensor_pb2.Image(
        pixels=tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=[3, 64, 64], data=pixels.tobytes())
    )
    return model_service_pb2.PredictRequest(model="net", images=[image], top_k=1)


def test_open_watch_streams_do_not_block_unary_calls(
    running: RunningServer, health_watches: list[grpc.Future]
) -> None:
    for watch in health_watches:
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

    jobs = job_service_pb2_grpc.JobServiceStub(running.channel)
    running_job, queued_job = (submit(jobs, target) for target in (0, 1))  # one job thread: one waits
    watched = [running_job.id, queued_job.id] * (STREAMS // 2)
    watches = [jobs.WatchJob(job_pb.WatchJobRequest(job_id=job_id), timeout=120) for job_id in watched]
    seen: list[list[job_pb.Job]] = [[] for _ in watches]

    def follow(index: int) -> None:
        try:
            for update in watches[index]:
                seen[index].append(update.job)
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.CANCELLED, exc

    followers = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(STREAMS)]
    for follower in followers:
        follower.start()
    try:
        for i in range(STREAMS):  # every stream is open and has had its job's first state
            _wait_until(lambda i=i: len(seen[i]) >= 1, 30)

        models = model_service_pb2_grpc.ModelServiceStub(running.channel)
        health = health_pb2_grpc.HealthStub(running.channel)
        for _ in range(5):
            listed = models.ListModels(model_service_pb2.ListModelsRequest(), timeout=ANSWER_WITHIN_S)
            assert [m.name for m in listed.models] == ["net"]
            checked = health.Check(health_pb2.HealthCheckRequest(), timeout=ANSWER_WITHIN_S)
            assert checked.status == health_pb2.HealthCheckResponse.SERVING
            assert models.Predict(predict_request(), timeout=ANSWER_WITHIN_S).predictions
            job = jobs.GetJob(job_pb.GetJobRequest(job_id=queued_job.id), timeout=ANSWER_WITHIN_S).job
            assert job.state == job_pb.JOB_STATE_QUEUED

        # the streams follow their jobs: the running one's progress moves ...
        running_streams = [
            updates for updates, job_id in zip(seen, watched, strict=True) if job_id == running_job.id
        ]
        _wait_until(lambda: all(any(j.progress.step > 0 for j in updates) for updates in running_streams), 60)
        for job in (queued_job, running_job):
            jobs.CancelJob(job_pb.CancelJobRequest(job_id=job.id), timeout=30)
        # ... and all end with their job's final state
        for follower in followers:
            follower.join(timeout=60)
        assert not any(f.is_alive() for f in followers)
        for updates in seen:
            assert updates[-1].state == job_pb.JOB_STATE_CANCELLED
            steps = [j.progress.step for j in updates]
            assert steps == sorted(steps)
    finally:
        for watch in watches:
            watch.cancel()


def submit(jobs: job_service_pb2_grpc.JobServiceStub, target: int) -> job_pb.Job:
    spec = generative_pb2.ClassVisualisationSpec(
        model="net", target=generative_pb2.ClassRef(index=target), steps=10_000
    )
    return jobs.SubmitJob(job_pb.SubmitJobRequest(class_visualisation=spec), timeout=30).job


def test_a_closed_watch_job_stream_leaves_no_thread_behind(running: RunningServer) -> None:
    """Streams cancelled by their clients end on the server too: afterwards, a 2-thread pool still serves
    calls at once."""
    jobs = job_service_pb2_grpc.JobServiceStub(running.channel)
    job = submit(jobs, 2)
    for _ in range(3):
        watches = [jobs.WatchJob(job_pb.WatchJobRequest(job_id=job.id), timeout=60) for _ in range(STREAMS)]
        for watch in watches:
            assert next(watch).job.id == job.id
        for watch in watches:
            watch.cancel()
    models = model_service_pb2_grpc.ModelServiceStub(running.channel)
    assert models.Predict(predict_request(), timeout=ANSWER_WITHIN_S).predictions
    got = jobs.GetJob(job_pb.GetJobRequest(job_id=job.id), timeout=ANSWER_WITHIN_S).job
    assert got.id == job.id
    jobs.CancelJob(job_pb.CancelJobRequest(job_id=job.id), timeout=30)


def _wait_until(condition: Callable[[], bool], seconds: float) -> None:
    done = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        done.wait(0.05)
    assert condition(), f"not within {seconds} s"
