"""The shipped demo models ship with monitoring on: a fresh server on `models/` with the default settings
(but a short monitor round) evaluates every shipped model's robustness once, as background work of the
compute scheduler, and records it in the history and the gauges, without a single request."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable

import pytest
from glassbox_client import GlassboxClient
from support.paths import MODELS
from support.servers import RunningServer

SHIPPED = ("shapes", "shapes-onnx", "shapes-shortcut")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_asks_for_a_bounded_daily_evaluation(name: str) -> None:
    config = tomllib.loads((MODELS / name / "1" / "model.toml").read_text(encoding="utf-8"))
    monitoring = config["monitoring"]
    assert monitoring["reference_set"] in {p.name for p in (MODELS / name / "datasets").iterdir()}
    assert 0 < monitoring["images"] <= 64 and monitoring["interval_hours"] == 24


def test_a_fresh_server_records_a_history_entry_for_every_shipped_model(
    start_server: Callable[..., RunningServer],
) -> None:
    running = start_server(robustness={"check_interval_seconds": 0.3})
    expected_images = {
        name: tomllib.loads((MODELS / name / "1" / "model.toml").read_text())["monitoring"]["images"]
        for name in SHIPPED
    }
    with GlassboxClient(running.address, timeout=30) as client:
        deadline = time.monotonic() + 600
        history = {name: client.robustness.history(name) for name in SHIPPED}
        while not all(history.values()) and time.monotonic() < deadline:
            time.sleep(1)
            history = {name: client.robustness.history(name) for name in SHIPPED}
        for name, records in history.items():
            (record,) = records
            assert (record.version, record.trigger, record.reference_set) == (
                "1",
                "new_version",
                "shapes-val",
            )
            assert record.images == expected_images[name] and 0 < record.clean_accuracy <= 1, name
            assert record.attacks and record.corruptions, name
    registry = running.server.metrics.registry
    for name in SHIPPED:
        assert registry.get_sample_value("glassbox_clean_accuracy", {"model": name, "version": "1"}) == (
            pytest.approx(history[name][0].clean_accuracy)
        )
    started: dict[str, float] = {}  # calls the compute scheduler started, by priority class
    for metric in registry.collect():
        if metric.name == "glassbox_scheduler_queue_seconds":
            for sample in metric.samples:
                if sample.name.endswith("_count"):
                    priority = sample.labels["priority"]
                    started[priority] = started.get(priority, 0) + sample.value
    assert started.get("background", 0) >= len(SHIPPED) and not started.get("interactive")
