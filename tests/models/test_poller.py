"""New version folders are loaded while the server runs: served, listed and health-checked without a
restart; versions already loaded stay as they are."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from glassbox.models.repository import ModelRepository, ModelState
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.model_repository import write_model_version
from support.servers import RunningServer


def test_refresh_loads_only_what_appeared(tmp_path: Path) -> None:
    write_model_version(tmp_path, "net", "1")
    repository = ModelRepository(tmp_path, device=torch.device("cpu"))
    repository.load_all()
    first = repository.entry("net", "1")
    assert repository.refresh() == []
    write_model_version(tmp_path, "net", "10", seed=3)
    write_model_version(tmp_path, "net", "2", seed=2)
    write_model_version(tmp_path, "other", "1")
    dataset = tmp_path / "net" / "datasets" / "val"
    dataset.mkdir(parents=True)
    (dataset / "dataset.toml").write_text('[generator]\nname = "glassbox.shapes"\n')
    added = repository.refresh()
    assert sorted((e.name, e.version) for e in added) == [("net", "10"), ("net", "2"), ("other", "1")]
    assert [v.version for v in repository.versions("net")] == ["1", "2", "10"]
    assert repository.entry("net").version == "10" and repository.entry("net", "1") is first
    assert repository.dataset_names("net") == ["val"]
    (tmp_path / "net" / "3").mkdir()  # half-written: no model.toml yet
    (broken,) = repository.refresh()
    assert broken.state is ModelState.FAILED and repository.entry("net").version == "10"


def test_a_running_server_serves_a_version_copied_in(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    write_model_version(tmp_path, "net", "1")
    server = start_server(model_repository=tmp_path, model_repository_poll_seconds=0.2)
    models = model_service_pb2_grpc.ModelServiceStub(server.channel)
    health = health_pb2_grpc.HealthStub(server.channel)
    staging = tmp_path.parent / f"{tmp_path.name}-staging"
    write_model_version(staging, "net", "2", seed=4)
    shutil.move(staging / "net" / "2", tmp_path / "net" / "2")  # in whole, as docs/operations.md asks
    deadline = time.monotonic() + 30
    while models.GetModel(pb.GetModelRequest(model="net"), timeout=10).model.version != "2":
        if time.monotonic() > deadline:
            pytest.fail("the new version was not loaded within 30 s")
        time.sleep(0.1)
    status = health.Check(health_pb2.HealthCheckRequest(service="model/net/2"), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    listed = models.ListModels(pb.ListModelsRequest(), timeout=10).models[0]
    assert [v.version for v in listed.versions] == ["1", "2"]


def test_an_empty_repository_is_logged_and_not_ready_until_a_model_appears(
    start_server: Callable[..., RunningServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An empty volume or a mistyped path: a loud error at start-up, and the services that need a model
    NOT_SERVING (a readiness probe's answer) while the process itself stays SERVING (liveness)."""
    (tmp_path / "scripts").mkdir()  # a folder that is no model: no version inside
    with caplog.at_level("ERROR", logger="glassbox.server.app"):
        server = start_server(model_repository=tmp_path, model_repository_poll_seconds=0.2)
    assert "NO MODEL TO SERVE" in caplog.text and "holds no model version" in caplog.text
    health = health_pb2_grpc.HealthStub(server.channel)

    def status(service: str) -> int:
        return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status

    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert status("") == serving and status("glassbox.v1.JobService") == serving
    for service in ("ModelService", "AttributionService", "InspectionService"):
        assert status(f"glassbox.v1.{service}") == not_serving
    assert status("model/scripts") == not_serving

    staging = tmp_path.parent / f"{tmp_path.name}-staging"
    write_model_version(staging, "net", "1")
    shutil.move(staging / "net", tmp_path / "net")
    deadline = time.monotonic() + 30
    while status("glassbox.v1.ModelService") != serving:
        if time.monotonic() > deadline:
            pytest.fail("ModelService did not become SERVING within 30 s of a model appearing")
        time.sleep(0.1)
    assert status("glassbox.v1.AttributionService") == serving and status("model/net") == serving
