"""The Redis engine survives its processes dying: a `glassbox worker` killed with SIGKILL mid-job gets
its job retried (attempt 2) and, with no attempts left, FAILED with the reason — never stuck RUNNING;
a server restart loses no queued, running or finished job."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from glassbox.config import load_settings
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client.errors import ErrorStatus
from support.job_harness import LONG_STEPS, JobClient, WorkerProcess, class_visualisation, write_repository
from support.redis_server import RedisServer
from support.servers import RunningServer

HEARTBEAT_SECONDS = 0.5
VISIBILITY_SECONDS = 2.0
RECOVERY_BOUND_SECONDS = 30.0
"""Generous: detection takes about VISIBILITY + HEARTBEAT + 1 s; a new worker needs a few seconds to start."""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture
def jobs_settings(redis_server: RedisServer) -> dict[str, object]:
    """A fresh namespace per test, so each test sees only its own queue and workers."""
    return {
        "redis_url": redis_server.url,
        "namespace": f"recovery-{uuid.uuid4().hex[:8]}",
        "heartbeat_seconds": HEARTBEAT_SECONDS,
        "visibility_timeout_seconds": VISIBILITY_SECONDS,
        "max_attempts": 2,
    }


@pytest.fixture
def start_worker(
    jobs_settings: dict[str, object], repository: Path, tmp_path: Path
) -> Iterator[Callable[[], WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        log = tmp_path / f"worker-{len(workers)}.log"
        worker = WorkerProcess(
            str(jobs_settings["redis_url"]),
            str(jobs_settings["namespace"]),
            repository,
            log,
            heartbeat_seconds=HEARTBEAT_SECONDS,
            visibility_timeout_seconds=VISIBILITY_SECONDS,
        )
        workers.append(worker)
        return worker.wait_ready()

    yield start
    for worker in workers:
        worker.stop()


def collect(client: JobClient, job_id: str) -> tuple[list[pb.Job], threading.Thread]:
    """Watch a job in the background; the list fills with every update until the job finishes."""
    updates: list[pb.Job] = []

    def run() -> None:
        for update in client.stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=120):
            updates.append(update.job)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return updates, thread


def test_a_killed_workers_job_is_retried_then_failed_with_the_reason(
    start_server: Callable[..., RunningServer],
    repository: Path,
    jobs_settings: dict[str, object],
    start_worker: Callable[[], WorkerProcess],
) -> None:
    client = JobClient(start_server(model_repository=repository, jobs=jobs_settings).channel)
    first = start_worker()
    job = client.submit(class_visualisation(LONG_STEPS))
    assert job.max_attempts == 2
    updates, watcher = collect(client, job.id)
    assert client.wait_running(job.id).attempt == 1

    first.kill()
    second = start_worker()
    retried = client.wait_for(
        job.id,
        lambda j: j.attempt == 2 and j.state == pb.JOB_STATE_RUNNING and j.progress.step > 0,
        RECOVERY_BOUND_SECONDS,
    )
    assert retried.max_attempts == 2

    second.kill()
    failed = client.wait_for(job.id, lambda j: j.state == pb.JOB_STATE_FAILED, RECOVERY_BOUND_SECONDS)
    assert failed.attempt == 2 and failed.HasField("finish_time")
    assert failed.error.code_name == "UNAVAILABLE"
    assert "attempt 2 of 2 stopped sending heartbeats; no attempts left" in failed.error.message
    assert ErrorStatus.from_proto(failed.error_status).reason == "WORKER_LOST"

    watcher.join(timeout=10)
    states = [(update.state, update.attempt) for update in updates]
    requeued = [update for update in updates if update.state == pb.JOB_STATE_QUEUED and update.attempt == 1]
    assert (
        requeued and "attempt 1 of 2 stopped sending heartbeats; queued again" in requeued[0].progress.message
    )
    assert states.index((pb.JOB_STATE_RUNNING, 1)) < states.index((pb.JOB_STATE_QUEUED, 1))
    assert states.index((pb.JOB_STATE_QUEUED, 1)) < states.index((pb.JOB_STATE_RUNNING, 2))
    assert states[-1] == (pb.JOB_STATE_FAILED, 2), "the watcher saw the job through to its end"


def test_a_server_restart_loses_no_queued_running_or_finished_job(
    start_server: Callable[..., RunningServer],
    repository: Path,
    jobs_settings: dict[str, object],
    start_worker: Callable[[], WorkerProcess],
) -> None:
    first_server = RunningServer(
        load_settings(
            address="127.0.0.1:0", model_repository=repository, metrics={"port": 0}, jobs=jobs_settings
        )
    )
    client = JobClient(first_server.channel)
    start_worker()
    finished = client.submit(class_visualisation(3))
    finished_result = client.wait_finished(finished.id).class_visualisation
    running = client.submit(class_visualisation(LONG_STEPS))
    step_before = client.wait_running(running.id).progress.step
    queued = client.submit(class_visualisation(3))  # behind the running job: one worker
    first_server.close()

    client = JobClient(start_server(model_repository=repository, jobs=jobs_settings).channel)
    assert client.get(finished.id).class_visualisation == finished_result
    assert client.get(queued.id).state == pb.JOB_STATE_QUEUED
    listed = {job.id for job in client.list_all()}
    assert {finished.id, running.id, queued.id} <= listed

    stream = iter(client.stub.WatchJob(pb.WatchJobRequest(job_id=running.id), timeout=60))
    now = next(stream).job
    assert now.state == pb.JOB_STATE_RUNNING and now.attempt == 1, "the worker kept running it"
    later = next(update.job for update in stream if update.job.progress.step > now.progress.step)
    assert later.progress.step > step_before
    client.cancel(running.id)
    assert [update.job.state for update in stream][-1] == pb.JOB_STATE_CANCELLED
    assert client.wait_finished(queued.id).state == pb.JOB_STATE_SUCCEEDED
