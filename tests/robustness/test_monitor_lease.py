"""Monitoring with several replicas sharing one Redis history: the evaluation lease lets one replica run a
due evaluation while the others skip it and still publish its record; the lease itself (claim, renew,
release, expiry) keeps to its owner."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from glassbox.config import JobSettings
from glassbox.jobs.memory import InProcessEngine
from glassbox.jobs.records import JobFilter
from glassbox.models.repository import ModelRepository
from glassbox.robustness.history import HistoryRecord, MemoryHistory
from glassbox.robustness.monitor import RobustnessMonitor
from glassbox.robustness.redis_history import RedisHistory
from glassbox.wire.kinds import job_kinds
from glassbox.wire.kinds.robustness import KIND, MONITORING_JOBS
from support.model_repository import copy_shipped_model, monitoring_section
from support.redis_server import RedisServer

MONITORING = monitoring_section()


class Replica:
    """What one server process holds for monitoring: its repository, job engine, history client and
    monitor, and the records its metrics hook received."""

    def __init__(self, root: Path, redis_url: str, namespace: str) -> None:
        self.repository = ModelRepository(root, device=torch.device("cpu"))
        self.repository.load_all()
        self.jobs = InProcessEngine(JobSettings(worker_threads=1), self.repository, kinds=job_kinds())
        self.history = RedisHistory(redis_url, namespace)
        self.observed: list[HistoryRecord] = []
        self.monitor = RobustnessMonitor(
            self.repository,
            self.jobs,
            self.history,
            evaluations=MONITORING_JOBS,
            interval_seconds=0.2,
            observe=self.observed.append,
        )

    def job_ids(self) -> list[str]:
        return [job.id for job in self.jobs.list(JobFilter(kind=KIND), 100, "")[0]]

    def submitted(self) -> int:
        return len(self.job_ids())

    def close(self) -> None:
        self.monitor.stop()
        self.jobs.close()
        self.history.close()


@pytest.fixture(scope="module")
def repository_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    copy_shipped_model(root, "shapes", extra_toml=MONITORING)
    return root


def test_two_replicas_run_a_new_version_evaluation_once(
    repository_root: Path, redis_server: RedisServer
) -> None:
    first, second = (Replica(repository_root, redis_server.url, "lease-once") for _ in range(2))
    try:
        first.monitor.tick()
        second.monitor.tick()
        assert (first.submitted(), second.submitted()) == (1, 0)
        assert first.monitor.wait_idle(60) and second.monitor.wait_idle(5)
        (record,) = first.history.records("shapes")
        assert (record.version, record.trigger, record.images) == ("1", "new_version", 4)
        second.monitor.tick()
        assert (first.submitted(), second.submitted()) == (1, 0)
        assert [r.job_id for r in first.observed] == [r.job_id for r in second.observed] == [record.job_id]
        assert first.history.redis.exists("lease-once:robustness-lease:shapes:1") == 0
    finally:
        first.close()
        second.close()


def test_a_replica_takes_over_a_lease_given_back_without_a_record(
    repository_root: Path, redis_server: RedisServer
) -> None:
    first, second = (Replica(repository_root, redis_server.url, "lease-takeover") for _ in range(2))
    try:
        assert first.history.claim("shapes", "1", "a-replica-that-dies", 60)
        second.monitor.tick()
        assert second.submitted() == 0
        first.history.release("shapes", "1", "a-replica-that-dies")
        second.monitor.tick()
        assert second.submitted() == 1 and second.monitor.wait_idle(60)
        assert [r.job_id for r in second.history.records("shapes")] == second.job_ids()
    finally:
        first.close()
        second.close()


def test_the_lease_keeps_to_its_owner_and_expires(redis_server: RedisServer) -> None:
    store = RedisHistory(redis_server.url, "lease-unit")
    try:
        assert store.claim("m", "1", "a", 60) and not store.claim("m", "1", "b", 60)
        assert store.claim("m", "2", "b", 60)
        assert not store.renew("m", "1", "b", 60) and store.renew("m", "1", "a", 0.3)
        store.release("m", "1", "b")
        assert not store.claim("m", "1", "b", 60)
        time.sleep(0.5)
        assert store.claim("m", "1", "b", 60) and not store.renew("m", "1", "a", 60)
        store.release("m", "1", "b")
        assert store.claim("m", "1", "a", 60)
    finally:
        store.close()


def test_the_in_process_history_grants_every_claim() -> None:
    store = MemoryHistory()
    assert store.claim("m", "1", "a", 60) and store.claim("m", "1", "b", 60) and store.renew("m", "1", "c", 1)
