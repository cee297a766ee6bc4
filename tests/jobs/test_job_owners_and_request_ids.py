"""Jobs have owners and SubmitJob is idempotent, on both engines (the Redis one without a worker: the
jobs stay QUEUED, which is all these tests need).

Three principals from `security.tokens`: alice and bob (named tokens) and root (admin). A caller sees
only its own jobs, another's id is NOT_FOUND exactly as an unknown one; the admin sees all. The same
request_id from the same caller returns the same job, also under concurrent retries; with another spec
it is INVALID_ARGUMENT naming request_id; request ids are per caller.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc, server_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import server_service_pb2 as server_pb
from glassbox_client.errors import ErrorStatus, error_from_rpc
from support.job_harness import FINISHED, LONG_STEPS, class_visualisation, write_repository
from support.redis_server import RedisServer
from support.servers import RunningServer

TOKENS = {
    "alice": "alice-token-0123456789",
    "bob": "bob-token-0123456789ab",
    "root": "root-token-0123456789a",
}
ENTRIES = [
    f"{TOKENS['alice']} name=alice",
    f"{TOKENS['bob']} name=bob",
    f"{TOKENS['root']} name=root admin",
]


class Caller:
    """JobService calls as one principal."""

    def __init__(self, channel: grpc.Channel, token: str) -> None:
        self.stub = job_service_pb2_grpc.JobServiceStub(channel)
        self.server = server_service_pb2_grpc.ServerServiceStub(channel)
        self.metadata = (("authorization", f"Bearer {token}"),)

    def submit(self, request: pb.SubmitJobRequest) -> pb.Job:
        return self.stub.SubmitJob(request, timeout=30, metadata=self.metadata).job

    def get(self, job_id: str) -> pb.Job:
        return self.stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=30, metadata=self.metadata).job

    def cancel(self, job_id: str) -> pb.Job:
        return self.stub.CancelJob(pb.CancelJobRequest(job_id=job_id), timeout=30, metadata=self.metadata).job

    def cancel_and_wait(self, job_id: str) -> pb.Job:
        """Cancel, then poll until the job has stopped (a running job stops at its next step)."""
        job = self.cancel(job_id)
        deadline = time.monotonic() + 30
        while job.state not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.05)
            job = self.get(job_id)
        return job

    def watch_first(self, job_id: str) -> pb.WatchJobResponse:
        stream = self.stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=30, metadata=self.metadata)
        try:
            return next(iter(stream))
        finally:
            stream.cancel()

    def list_ids(self) -> set[str]:
        ids, token = set(), ""
        while True:
            page = self.stub.ListJobs(
                pb.ListJobsRequest(page_token=token), timeout=30, metadata=self.metadata
            )
            ids |= {job.id for job in page.jobs}
            token = page.next_page_token
            if not token:
                return ids

    def info(self) -> server_pb.GetServerInfoResponse:
        return self.server.GetServerInfo(server_pb.GetServerInfoRequest(), timeout=30, metadata=self.metadata)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module", params=["in_process", "redis"])
def server(request: pytest.FixtureRequest, start_server, repository: Path) -> Iterator[RunningServer]:
    jobs: dict[str, object] = {"worker_threads": 1, "queue_capacity": 64}
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        jobs.update(redis_url=redis.url, namespace=f"owners-{uuid.uuid4().hex[:8]}")
    server = start_server(model_repository=repository, jobs=jobs, security={"tokens": ENTRIES})
    yield server


@pytest.fixture(scope="module")
def callers(server: RunningServer) -> dict[str, Caller]:
    return {name: Caller(server.channel, token) for name, token in TOKENS.items()}


def reason_of(call) -> tuple[grpc.StatusCode, str | None, str | None]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error = error_from_rpc(raised.value)
    return error.code, error.reason, error.field


def test_a_caller_sees_only_its_own_jobs_and_the_admin_sees_all(callers: dict[str, Caller]) -> None:
    alice, bob, root = callers["alice"], callers["bob"], callers["root"]
    mine = alice.submit(class_visualisation(LONG_STEPS, seed=1))
    theirs = bob.submit(class_visualisation(LONG_STEPS, seed=2))
    assert (mine.owner, theirs.owner) == ("alice", "bob")
    unknown = uuid.uuid4().hex
    hidden = (grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND", "job_id")
    assert reason_of(lambda: bob.get(mine.id)) == hidden == reason_of(lambda: bob.get(unknown))
    assert reason_of(lambda: bob.cancel(mine.id)) == hidden
    assert reason_of(lambda: bob.watch_first(mine.id)) == hidden
    assert alice.get(mine.id).state != pb.JOB_STATE_CANCELLED, "bob's CancelJob did nothing"
    assert alice.watch_first(mine.id).job.id == mine.id
    assert mine.id in alice.list_ids() and theirs.id not in alice.list_ids()
    assert theirs.id in bob.list_ids() and mine.id not in bob.list_ids()
    assert {mine.id, theirs.id} <= root.list_ids()
    assert root.get(theirs.id).owner == "bob"
    assert root.cancel_and_wait(mine.id).state == pb.JOB_STATE_CANCELLED
    bob.cancel_and_wait(theirs.id)


def test_server_info_names_the_caller(callers: dict[str, Caller]) -> None:
    alice, root = callers["alice"].info().caller, callers["root"].info().caller
    assert (alice.principal, alice.admin, alice.token_required) == ("alice", False, True)
    assert (root.principal, root.admin) == ("root", True)


def test_the_same_request_id_returns_the_same_job(callers: dict[str, Caller]) -> None:
    alice, bob = callers["alice"], callers["bob"]
    request = class_visualisation(LONG_STEPS, seed=3)
    request.request_id = f"retry-{uuid.uuid4()}"
    first = alice.submit(request)
    again = alice.submit(request)
    assert again.id == first.id and again.request_id == request.request_id
    assert sum(1 for job_id in alice.list_ids() if job_id == first.id) == 1
    other = request.__deepcopy__()
    other.class_visualisation.seed = 4
    code, reason, field = reason_of(lambda: alice.submit(other))
    assert (code, reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED", "request_id")
    bobs = bob.submit(request)  # request ids are per caller
    assert bobs.id != first.id and bobs.owner == "bob"
    alice.cancel_and_wait(first.id)
    assert alice.submit(request).id == first.id, "a finished job still answers its request_id"
    bob.cancel_and_wait(bobs.id)


def test_concurrent_retries_queue_one_job(callers: dict[str, Caller]) -> None:
    alice = callers["alice"]
    request = class_visualisation(LONG_STEPS, seed=5)
    request.request_id = uuid.uuid4().hex
    before = alice.list_ids()
    ids: list[str] = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        barrier.wait()
        ids.append(alice.submit(request).id)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert alice.list_ids() - before == set(ids)
    alice.cancel_and_wait(ids[0])


def test_a_malformed_request_id_is_refused(callers: dict[str, Caller]) -> None:
    request = class_visualisation(LONG_STEPS)
    for bad in ("has space", "x" * 129, "semi;colon"):
        request.request_id = bad
        code, reason, field = reason_of(lambda: callers["alice"].submit(request))
        assert (code, reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "request_id")


def test_a_cancelled_job_has_a_rich_error_status(callers: dict[str, Caller]) -> None:
    alice = callers["alice"]
    job = alice.submit(class_visualisation(LONG_STEPS, seed=6))
    final = alice.cancel_and_wait(job.id)
    assert final.state == pb.JOB_STATE_CANCELLED
    status = final.error_status
    assert status.code == grpc.StatusCode.CANCELLED.value[0] and "CancelJob" in status.message
    assert final.error.code_name == "CANCELLED" and final.error.message == status.message  # deprecated form
    typed = ErrorStatus.from_proto(status)
    assert (typed.reason, typed.domain) == ("CANCELLED", "glassbox.v1")
