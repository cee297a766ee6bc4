"""WatchJob heartbeats and its terminal end, `omit_result`, and job ids that reach the wrong replica.

The in-process engine keeps a job only in the server process that took it; its ids carry that
process's replica tag, so another replica answers NOT_FOUND with reason JOB_NOT_ON_THIS_REPLICA (and
says which replica has it) rather than JOB_NOT_FOUND. Two servers in this process stand in for two
replicas.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import grpc
import pytest
from glassbox.config import load_settings
from glassbox.jobs.ids import id_tag, tagged_job_id
from glassbox.server.app import warn_about_replicas
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import server_service_pb2 as server_pb
from glassbox_client._generated.glassbox.v1 import server_service_pb2_grpc
from glassbox_client.errors import error_from_rpc
from support.job_harness import LONG_STEPS, JobClient, class_visualisation, write_repository
from support.servers import RunningServer

HEARTBEAT_S = 0.3


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def replica_a(start_server, repository: Path) -> RunningServer:
    return start_server(
        model_repository=repository, jobs={"worker_threads": 1, "watch_heartbeat_seconds": HEARTBEAT_S}
    )


@pytest.fixture(scope="module")
def replica_b(start_server, repository: Path) -> RunningServer:
    return start_server(model_repository=repository, jobs={"worker_threads": 1})


def replica_id(server: RunningServer) -> str:
    stub = server_service_pb2_grpc.ServerServiceStub(server.channel)
    return stub.GetServerInfo(server_pb.GetServerInfoRequest(), timeout=10).replica_id


def test_a_queued_job_gets_heartbeats_and_the_stream_ends_with_the_final_job(
    replica_a: RunningServer,
) -> None:
    client = JobClient(replica_a.channel)
    running = client.submit(class_visualisation(LONG_STEPS, seed=1))
    client.wait_running(running.id)
    queued = client.submit(class_visualisation(LONG_STEPS, seed=2))  # waits behind `running`
    stream = client.stub.WatchJob(pb.WatchJobRequest(job_id=queued.id), timeout=30)
    updates = iter(stream)
    first = next(updates)
    assert first.job.state == pb.JOB_STATE_QUEUED and not first.heartbeat
    started = time.monotonic()
    beats = [next(updates) for _ in range(3)]
    elapsed = time.monotonic() - started
    assert all(beat.heartbeat and beat.job.state == pb.JOB_STATE_QUEUED for beat in beats)
    assert elapsed >= 2.5 * HEARTBEAT_S, "heartbeats come at the configured interval, not in a burst"
    client.cancel(queued.id)
    rest = list(updates)
    assert rest[-1].job.state == pb.JOB_STATE_CANCELLED and not rest[-1].heartbeat
    client.cancel(running.id)
    client.wait_finished(running.id)


def test_the_redis_engine_sends_heartbeats_too(start_server, repository: Path, redis_server) -> None:
    """No worker serves this namespace, so the job stays QUEUED: only heartbeats, then the cancel."""
    jobs = {"redis_url": redis_server.url, "namespace": f"beats-{uuid.uuid4().hex[:8]}"}
    server = start_server(model_repository=repository, jobs={**jobs, "watch_heartbeat_seconds": HEARTBEAT_S})
    client = JobClient(server.channel)
    queued = client.submit(class_visualisation(LONG_STEPS, seed=5))
    updates = iter(client.stub.WatchJob(pb.WatchJobRequest(job_id=queued.id), timeout=30))
    assert not next(updates).heartbeat
    assert all(next(updates).heartbeat for _ in range(2))
    client.cancel(queued.id)
    assert list(updates)[-1].job.state == pb.JOB_STATE_CANCELLED


def test_omit_result_leaves_the_result_out_of_the_stream(replica_a: RunningServer) -> None:
    client = JobClient(replica_a.channel)
    job = client.submit(class_visualisation(3, seed=3))
    request = pb.WatchJobRequest(job_id=job.id, omit_result=True)
    final = list(client.stub.WatchJob(request, timeout=60))[-1].job
    assert final.state == pb.JOB_STATE_SUCCEEDED and final.WhichOneof("result") is None
    assert client.get(job.id).HasField("class_visualisation")
    with_result = list(client.stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60))[-1].job
    assert with_result.HasField("class_visualisation")


def test_a_job_id_from_another_replica_is_told_apart(
    replica_a: RunningServer, replica_b: RunningServer
) -> None:
    job = JobClient(replica_a.channel).submit(class_visualisation(2, seed=4))
    assert id_tag(job.id) == replica_id(replica_a) != replica_id(replica_b)
    other = JobClient(replica_b.channel)
    for call in (
        lambda: other.get(job.id),
        lambda: other.cancel(job.id),
        lambda: next(iter(other.stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=10))),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call()
        error = error_from_rpc(raised.value)
        assert error.code is grpc.StatusCode.NOT_FOUND and error.reason == "JOB_NOT_ON_THIS_REPLICA"
        assert error.metadata["job_replica"] == replica_id(replica_a) and error.field == "job_id"
        assert "Redis job engine" in error.message
    for unknown in (uuid.uuid4().hex, tagged_job_id(replica_id(replica_b))):
        with pytest.raises(grpc.RpcError) as raised:
            other.get(unknown)
        assert error_from_rpc(raised.value).reason == "JOB_NOT_FOUND"


def test_start_up_warns_about_in_process_jobs_behind_several_replicas(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with caplog.at_level(logging.WARNING, logger="glassbox.server.app"):
        warn_about_replicas(load_settings(replicas=1))
        assert not caplog.records
        warn_about_replicas(load_settings(replicas=3))
        warn_about_replicas(load_settings(replicas=3, jobs={"redis_url": "redis://127.0.0.1:1/0"}))
    (warning,) = caplog.records
    assert "replicas = 3" in warning.getMessage() and "JOB_NOT_ON_THIS_REPLICA" in warning.getMessage()
    caplog.clear()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with caplog.at_level(logging.WARNING, logger="glassbox.server.app"):
        warn_about_replicas(load_settings())
    assert "Kubernetes" in caplog.records[0].getMessage()
