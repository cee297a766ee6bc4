"""MonitoringService on a real server with a Redis history: the checks of two versions are recorded in
Redis, read back a page at a time (stable under appends), published again as gauges after a restart
without running again; the change report of the version pair, from the RPC, the Python client and the
CLI; bad requests name their field and leave the server serving."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from glassbox.core.cancellation import CancellationToken
from glassbox.evaluation.explain import explain
from glassbox.monitoring.checks import method_config
from glassbox.monitoring.record import ExplanationRecord
from glassbox.robustness.history import MemoryHistory
from glassbox.robustness.redis_history import RedisHistory
from glassbox_client import GlassboxClient
from glassbox_client._generated.glassbox.v1 import monitoring_pb2 as pb
from glassbox_client._generated.glassbox.v1 import monitoring_pb2_grpc
from glassbox_client.cli import main as cli
from PIL import Image
from scipy.stats import spearmanr
from support.paths import MODELS
from support.redis_server import RedisServer
from support.servers import RunningServer


@pytest.fixture(scope="module")
def repository_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(MODELS / "shapes", root / "shapes")
    shutil.copytree(root / "shapes" / "1", root / "shapes" / "2")
    shutil.copy(MODELS / "shapes-shortcut" / "1" / "model.safetensors", root / "shapes" / "2")
    toml = root / "shapes" / "1" / "model.toml"
    toml.write_text(toml.read_text().replace("images = 48", "images = 16"))
    toml = root / "shapes" / "2" / "model.toml"
    toml.write_text(toml.read_text().replace("images = 48", "images = 16"))
    return root


def _settings(root: Path, redis_server: RedisServer) -> dict:
    return {
        "model_repository": root,
        "robustness": {"check_interval_seconds": 0.3, "redis_url": redis_server.url, "namespace": "gbtest"},
    }


def _records(client: GlassboxClient, count: int) -> list:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        records = list(client.monitoring.explanation_records("shapes", page_size=1))
        if len(records) >= count:
            return records
        time.sleep(0.3)
    pytest.fail("the checks did not finish")


@pytest.fixture(scope="module")
def running(
    start_server: Callable[..., RunningServer], repository_root: Path, redis_server: RedisServer
) -> RunningServer:
    server = start_server(**_settings(repository_root, redis_server))
    with GlassboxClient(server.address) as client:
        _records(client, 2)
    return server


def _metrics(running: RunningServer) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{running.server.metrics.port}/metrics").read().decode()


def test_checks_are_kept_in_redis_and_paged(running: RunningServer, redis_server: RedisServer) -> None:
    stored = redis.Redis.from_url(redis_server.url).lrange("gbtest:explanations:shapes", 0, -1)
    assert len(stored) == 2
    newest = ExplanationRecord.from_json(stored[0])
    with GlassboxClient(running.address) as client:
        first = client.monitoring.explanation_history("shapes", page_size=1)
        assert [r.check_id for r in first.records] == [newest.check_id] and first.next_page_token
        second = client.monitoring.explanation_history(
            "shapes", page_size=1, page_token=first.next_page_token
        )
        assert len(second.records) == 1 and second.next_page_token == ""
        only_one = client.monitoring.explanation_history("shapes", version="1")
        assert [r.version for r in only_one.records] == ["1"] and only_one.next_page_token == ""
    versions = {record.version for record in (*first.records, *second.records)}
    assert versions == {"1", "2"}
    record = newest if newest.version == "2" else ExplanationRecord.from_json(stored[1])
    assert record.drifted and record.method("saliency").similarity[0].baseline_version == "1"


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_pages_stay_put_when_records_are_appended(store: str, redis_server: RedisServer) -> None:
    history = (
        MemoryHistory(max_records=10)
        if store == "memory"
        else RedisHistory(redis_server.url, "pages", 10, kind="explanations", record_type=ExplanationRecord)
    )

    def record(i: int) -> ExplanationRecord:
        return ExplanationRecord(
            "m", str(i % 2), float(i), "s", "schedule", 1, (), (), (), 0, 0, 0, 0.0, f"c{i}"
        )

    for i in range(5):
        history.append(record(i))
    page, token = history.page("m", "", 2)
    assert [r.check_id for r in page] == ["c4", "c3"]
    history.append(record(5))  # a new check between two pages does not shift the next page
    page, token = history.page("m", "", 2, token)
    assert [r.check_id for r in page] == ["c2", "c1"]
    page, token = history.page("m", "", 2, token)
    assert [r.check_id for r in page] == ["c0"] and token == ""
    assert [r.check_id for r in history.page("m", "1", 10)[0]] == ["c5", "c3", "c1"]
    with pytest.raises(ValueError, match="page token"):
        history.page("m", "", 2, "nope")
    history.close()


def test_a_restart_publishes_the_history_without_checking_again(
    start_server: Callable[..., RunningServer],
    repository_root: Path,
    redis_server: RedisServer,
    running: RunningServer,
) -> None:
    before = redis.Redis.from_url(redis_server.url).llen("gbtest:explanations:shapes")
    again = start_server(**_settings(repository_root, redis_server))
    deadline = time.monotonic() + 30
    while 'glassbox_explanation_drift{method="saliency",model="shapes",version="2"} 1.0' not in _metrics(
        again
    ):
        assert time.monotonic() < deadline, "the gauges were not published from the history"
        time.sleep(0.2)
    time.sleep(1.0)  # a few monitor rounds
    assert redis.Redis.from_url(redis_server.url).llen("gbtest:explanations:shapes") == before
    assert (
        'glassbox_explanation_similarity{baseline_version="1",method="saliency",model="shapes",version="2"}'
        in _metrics(again)
    )


def test_change_report_shows_the_images_that_changed_most(running: RunningServer) -> None:
    with GlassboxClient(running.address) as client:
        report = client.monitoring.explanation_changes("shapes", "saliency", images=16, top=4)
    assert (report.version, report.baseline_version, report.reference_set, report.images) == (
        "2",
        "1",
        "shapes-val",
        16,
    )
    assert len(report.changes) == 4
    spearmans = [change.spearman for change in report.changes]
    assert spearmans == sorted(spearmans)
    assert report.forward_passes == report.budget_forward_passes > 0
    repository = running.server.context.repository
    images = repository.dataset("shapes", "shapes-val", max_pixels=10**8).head(16)
    maps = [
        explain(
            repository.get("shapes", version),
            method_config("saliency"),
            images.images,
            images.labels,
            CancellationToken(),
            running.server.context.settings,
        ).values
        for version in ("1", "2")
    ]
    per_image = [
        float(spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic)
        for a, b in zip(maps[0].numpy(), maps[1].numpy(), strict=True)
    ]
    assert report.spearman == pytest.approx(np.mean(per_image), abs=1e-5)
    assert spearmans == pytest.approx(sorted(per_image)[:4], abs=1e-5)
    first = report.changes[0]
    assert first.spearman == pytest.approx(per_image[first.index], abs=1e-5)
    assert first.name == images.names[first.index]
    assert first.overlays.size == (3 * 128 + 2 * 6, 128)
    assert report.picture.size[1] > 4 * 128
    assert report.spearman < 0.5


def test_cli_writes_the_change_report_and_the_history(
    running: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png, summary = tmp_path / "changes.png", tmp_path / "changes.json"
    code = cli(
        ["--address", running.address, "monitoring", "changes", "shapes", "--method", "grad_cam",
         "--images", "8", "--top", "2", "-o", str(png), "--json", str(summary)]
    )  # fmt: skip
    assert code == 0
    assert Image.open(io.BytesIO(png.read_bytes())).format == "PNG"
    data = json.loads(summary.read_text())
    assert data["method"] == "grad_cam" and data["images"] == 8 and len(data["changes"]) == 2
    assert cli(["--address", running.address, "monitoring", "history", "shapes", "--version", "2"]) == 0
    out = capsys.readouterr().out
    assert "shapes v2 new_version" in out and "drift" in out and "Spearman vs version 1" in out


BAD = [
    ({"model": ""}, "GetExplanationChanges", "INVALID_ARGUMENT", "model"),
    ({"model": "nope", "method": "saliency"}, "GetExplanationChanges", "NOT_FOUND", "model"),
    ({"method": "no_such"}, "GetExplanationChanges", "INVALID_ARGUMENT", "method"),
    (
        {"method": "saliency", "version": "1"},
        "GetExplanationChanges",
        "FAILED_PRECONDITION",
        "baseline_version",
    ),
    (
        {"method": "saliency", "baseline_version": "9"},
        "GetExplanationChanges",
        "NOT_FOUND",
        "baseline_version",
    ),
    ({"method": "saliency", "version": "9"}, "GetExplanationChanges", "NOT_FOUND", "version"),
    ({"method": "saliency", "reference_set": "nope"}, "GetExplanationChanges", "NOT_FOUND", "reference_set"),
    ({"method": "saliency", "images": 5000}, "GetExplanationChanges", "INVALID_ARGUMENT", "images"),
    ({"method": "saliency", "top": 99}, "GetExplanationChanges", "INVALID_ARGUMENT", "top"),
    (
        {"method": "saliency", "top_k_percent": 150},
        "GetExplanationChanges",
        "INVALID_ARGUMENT",
        "top_k_percent",
    ),
    ({"page_size": 5000}, "GetExplanationHistory", "INVALID_ARGUMENT", "page_size"),
    ({"page_token": "nope"}, "GetExplanationHistory", "INVALID_ARGUMENT", "page_token"),
    ({"model": "nope"}, "GetExplanationHistory", "NOT_FOUND", "model"),
]


@pytest.mark.parametrize(("fields", "rpc", "code", "field"), BAD, ids=[f"{b[1]}-{b[3]}-{b[2]}" for b in BAD])
def test_bad_requests_name_their_field(
    running: RunningServer, fields: dict, rpc: str, code: str, field: str
) -> None:
    stub = monitoring_pb2_grpc.MonitoringServiceStub(running.channel)
    request_type = (
        pb.GetExplanationChangesRequest if rpc == "GetExplanationChanges" else pb.GetExplanationHistoryRequest
    )
    request = request_type(**{"model": "shapes", **fields})
    with pytest.raises(grpc.RpcError) as error:
        getattr(stub, rpc)(request, timeout=30)
    assert error.value.code().name == code, error.value.details()
    assert error.value.details().startswith(f"{field}:"), error.value.details()
    assert stub.GetExplanationHistory(pb.GetExplanationHistoryRequest(model="shapes"), timeout=10).records


def test_the_asyncio_client_reads_the_same(running: RunningServer) -> None:
    from glassbox_client.aio import AsyncGlassboxClient

    async def read() -> tuple:
        async with AsyncGlassboxClient(running.address) as glassbox:
            page = await glassbox.monitoring.explanation_history("shapes", version="2")
            changes = await glassbox.monitoring.explanation_changes("shapes", "saliency", images=4, top=1)
            return page, changes

    page, changes = asyncio.run(read())
    with GlassboxClient(running.address) as client:
        assert page == client.monitoring.explanation_history("shapes", version="2")
    assert (changes.version, changes.baseline_version, changes.images, len(changes.changes)) == (
        "2",
        "1",
        4,
        1,
    )
