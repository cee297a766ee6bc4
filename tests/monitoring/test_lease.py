"""Two replicas sharing one Redis history find the same explanation check due at once: the lease lets
one of them run it, the other records nothing and publishes the winner's record as its gauges."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import torch
from glassbox.config import SchedulerSettings, Settings
from glassbox.models.repository import ModelRepository
from glassbox.monitoring.monitor import ExplanationMonitor
from glassbox.monitoring.record import ExplanationRecord
from glassbox.robustness.redis_history import RedisHistory
from glassbox.serving import ComputeScheduler
from support.paths import MODELS
from support.redis_server import RedisServer


def test_one_replica_runs_a_due_check_and_both_publish_it(tmp_path: Path, redis_server: RedisServer) -> None:
    shutil.copytree(MODELS / "shapes", tmp_path / "shapes")
    toml = tmp_path / "shapes" / "1" / "model.toml"
    toml.write_text(toml.read_text().replace("images = 48", "images = 8"))
    replicas = []
    for _ in range(2):
        repository = ModelRepository(tmp_path, device=torch.device("cpu"))
        repository.load_all()
        scheduler = ComputeScheduler(SchedulerSettings(), device=torch.device("cpu"))
        history = RedisHistory(
            redis_server.url, "lease-expl", kind="explanations", record_type=ExplanationRecord
        )
        published: list[ExplanationRecord] = []
        monitor = ExplanationMonitor(
            repository,
            scheduler,
            history,
            interval_seconds=1,
            settings=Settings(limits={"max_image_pixels": 10**8}),
            observe=published.append,
        )
        replicas.append((monitor, scheduler, history, published))
    try:
        threads = [threading.Thread(target=monitor.tick) for monitor, *_ in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for monitor, *_ in replicas:
            monitor.tick()  # the replica that lost publishes the winner's record; nobody checks again
        history = replicas[0][2]
        (record,) = history.records("shapes")
        assert [[r.check_id for r in published] for *_, published in replicas] == [[record.check_id]] * 2
        assert history.redis.exists("lease-expl:explanations-lease:shapes:1") == 0
    finally:
        for monitor, scheduler, history, _ in replicas:
            monitor.stop()
            scheduler.close()
            history.close()
