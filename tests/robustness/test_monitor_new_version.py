"""A version folder copied into the repository while the server runs is loaded by the poller and then
evaluated by the monitor (trigger `new_version`), with no restart: "whenever a new version is loaded"."""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Callable

import pytest
from glassbox_client._generated.glassbox.v1 import robustness_pb2 as pb
from glassbox_client._generated.glassbox.v1 import robustness_pb2_grpc
from support.model_repository import copy_shipped_model, monitoring_section
from support.servers import RunningServer

MONITORING = monitoring_section()


def records_of(stub: robustness_pb2_grpc.RobustnessServiceStub, version: str) -> list[pb.RobustnessRecord]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        request = pb.GetRobustnessHistoryRequest(model="shapes", version=version)
        records = list(stub.GetRobustnessHistory(request, timeout=10).records)
        if records:
            return records
        time.sleep(0.2)
    pytest.fail(f"no history record for version {version} within 60 s")


def test_a_version_copied_in_while_serving_is_evaluated(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("models")
    copy_shipped_model(root, "shapes", extra_toml=MONITORING)
    running = start_server(
        model_repository=root,
        model_repository_poll_seconds=0.2,
        robustness={"check_interval_seconds": 0.3},
    )
    stub = robustness_pb2_grpc.RobustnessServiceStub(running.channel)
    records_of(stub, "1")
    staging = tmp_path_factory.mktemp("staging")
    shutil.copytree(root / "shapes" / "1", staging / "2")
    shutil.move(staging / "2", root / "shapes" / "2")
    (record,) = records_of(stub, "2")
    assert (record.version, record.trigger, record.images) == ("2", "new_version", 4)
    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{running.server.metrics.port}/metrics").read().decode()
    )
    assert f'glassbox_clean_accuracy{{model="shapes",version="2"}} {record.clean_accuracy}' in metrics
