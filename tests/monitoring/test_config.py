"""A broken [monitoring] section fails that version's load with the reason (shown by GetModel) while the
other versions and models keep serving; the parser names the bad key and documents its defaults."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import grpc
import pytest
from glassbox.monitoring.config import RANGES, ExplanationMonitoring, Thresholds, parse_explanations
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc
from support.model_repository import copy_shipped_model
from support.paths import MODELS
from support.servers import RunningServer

GOOD = '[monitoring]\nreference_set = "shapes-val"\ninterval_hours = 0\nrobustness = false\n'


def _parse(table: dict) -> ExplanationMonitoring:
    return parse_explanations(table, reference_set="shapes-val", interval_hours=24, input_size=(64, 64))


def test_defaults_are_the_documented_ones() -> None:
    config = _parse({})
    assert config.methods == ("saliency", "grad_cam") and config.images == 64 and config.steps == 16
    assert config.top_k_percent == 10 and config.regions == () and config.baseline_version == ""
    assert config.thresholds == Thresholds()
    assert set(RANGES) == set(vars(Thresholds()))


BAD_TABLES = [
    ({"method": ["saliency"]}, "monitoring.explanations has unknown keys ['method']"),
    ({"methods": []}, "monitoring.explanations.methods"),
    ({"methods": ["saliency", "saliency"]}, "lists a method twice"),
    ({"images": -1}, "monitoring.explanations.images"),
    ({"steps": 1}, "monitoring.explanations.steps"),
    ({"top_k_percent": 0}, "monitoring.explanations.top_k_percent"),
    ({"top_k_percent": 101}, "monitoring.explanations.top_k_percent"),
    ({"baseline_version": 1}, "monitoring.explanations.baseline_version"),
    ({"thresholds": {"min_spearman": 1.5}}, "monitoring.explanations.thresholds.min_spearman"),
    ({"thresholds": {"min_top_k_overlap": -0.1}}, "monitoring.explanations.thresholds.min_top_k_overlap"),
    (
        {"thresholds": {"max_region_mass_ratio": 0}},
        "monitoring.explanations.thresholds.max_region_mass_ratio",
    ),
    ({"thresholds": {"max_pointing_game_drop": True}}, "must be a finite number"),
    ({"thresholds": {"min_similarity": 0.5}}, "thresholds has unknown keys ['min_similarity']"),
    ({"regions": [{"name": "corner", "top": 0, "left": 0, "height": 8}]}, "missing ['width']"),
    ({"regions": [{"name": "c", "top": 60, "left": 0, "height": 8, "width": 8}]}, "regions[0].height"),
    ({"regions": [{"name": "c", "top": 0, "left": 64, "height": 8, "width": 8}]}, "regions[0].left"),
    ({"regions": [{"name": "object", "top": 0, "left": 0, "height": 8, "width": 8}]}, "regions[0].name"),
]


@pytest.mark.parametrize(("table", "message"), BAD_TABLES, ids=[m for _t, m in BAD_TABLES])
def test_a_bad_table_names_its_key(table: dict, message: str) -> None:
    with pytest.raises(ValueError, match=None) as error:
        _parse(table)
    assert message in str(error.value)


BROKEN_VERSIONS = {
    "2": (
        '[monitoring.explanations]\nmethods = ["saliency", "no_such_method"]\n',
        "methods[1]: unknown method",
    ),
    "3": ("[monitoring.explanations]\nthresholds = { min_ssim = 2.0 }\n", "thresholds.min_ssim"),
    "4": (
        '[monitoring.explanations]\nregions = [{ name = "x", top = 0, left = 0, height = 99, width = 8 }]\n',
        "regions[0].height",
    ),
    "5": ("[monitoring.explanations]\nmethods = []\n", "methods must be a non-empty list"),
}


def test_broken_sections_fail_their_version_and_the_rest_serves(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(MODELS / "shapes", root / "shapes")
    copy_shipped_model(root, "shapes-onnx")
    base = (root / "shapes" / "1" / "model.toml").read_text().split("[monitoring]")[0]
    for version, (table, _reason) in BROKEN_VERSIONS.items():
        shutil.copytree(root / "shapes" / "1", root / "shapes" / version)
        (root / "shapes" / version / "model.toml").write_text(base + GOOD + table)
    shutil.copytree(root / "shapes" / "1", root / "shapes" / "6")
    (root / "shapes" / "6" / "model.toml").write_text(base + GOOD.replace("shapes-val", "no-such-set"))
    onnx = root / "shapes-onnx" / "1" / "model.toml"
    onnx.write_text(onnx.read_text() + "\n" + GOOD + '[monitoring.explanations]\nmethods = ["saliency"]\n')
    running = start_server(model_repository=root, robustness={"monitoring": False})
    stub = model_service_pb2_grpc.ModelServiceStub(running.channel)
    expected = {version: reason for version, (_table, reason) in BROKEN_VERSIONS.items()}
    expected["6"] = "monitoring.reference_set: model 'shapes' has no named set 'no-such-set'"
    for version, reason in expected.items():
        info = stub.GetModel(model_pb.GetModelRequest(name="shapes", version=version), timeout=10).model
        assert info.state == model_pb.MODEL_STATE_FAILED and reason in info.error, (version, info.error)
    onnx_info = stub.GetModel(model_pb.GetModelRequest(name="shapes-onnx"), timeout=10).model
    assert onnx_info.state == model_pb.MODEL_STATE_FAILED
    assert "methods[0]: saliency cannot run on this model" in onnx_info.error
    newest = stub.GetModel(model_pb.GetModelRequest(name="shapes"), timeout=10).model
    assert newest.version == "1" and newest.state == model_pb.MODEL_STATE_READY
    with pytest.raises(grpc.RpcError) as error:
        stub.GetModel(model_pb.GetModelRequest(name="nope"), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
