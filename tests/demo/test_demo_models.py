"""The committed demo models in models/: they load, they are accurate, the ONNX export matches torch,
and the shortcut model really relies on the patch."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from glassbox.demo.model_cards import write_validation_sets
from glassbox.demo.shapes import CLASSES, PATCH_COLOURS, PATCH_CORNER, PATCH_SIZE, ShapesBatch, generate
from glassbox.models.architectures import build_architecture
from safetensors.torch import load_file

REPOSITORY = Path(__file__).resolve().parents[2] / "models"
MAX_WEIGHTS_BYTES = 5 * 1024 * 1024
TEST_SEED = 424_242  # not one of the seeds used by glassbox.demo.train


def _config(name: str) -> dict[str, Any]:
    return tomllib.loads((REPOSITORY / name / "1" / "model.toml").read_text(encoding="utf-8"))


def _load(name: str) -> torch.nn.Module:
    config = _config(name)
    model = build_architecture(config["architecture"], len(config["labels"]))
    model.load_state_dict(load_file(REPOSITORY / name / "1" / config["weights"]), strict=True)
    return model.eval()


def _normalise(images: torch.Tensor, name: str) -> torch.Tensor:
    section = _config(name)["input"]
    mean, std = torch.tensor(section["mean"]).view(3, 1, 1), torch.tensor(section["std"]).view(3, 1, 1)
    return (images - mean) / std


def _accuracy(name: str, data: ShapesBatch) -> float:
    with torch.inference_mode():
        predictions = _load(name)(_normalise(data.images, name)).argmax(1)
    return float((predictions == data.labels).float().mean())


@pytest.mark.parametrize("name", ["shapes", "shapes-onnx", "shapes-shortcut"])
def test_model_toml(name: str) -> None:
    config = _config(name)
    assert config["labels"] == list(CLASSES)
    assert (config["input"]["height"], config["input"]["width"]) == (64, 64)
    assert len(config["input"]["mean"]) == 3 and all(s > 0 for s in config["input"]["std"])
    assert (REPOSITORY / name / "1" / config["weights"]).stat().st_size < MAX_WEIGHTS_BYTES
    if name == "shapes-onnx":
        assert (config["format"], config["weights"]) == ("onnx", "model.onnx")
        assert "architecture" not in config and "explain" not in config
    else:
        assert (config["format"], config["architecture"]) == ("safetensors", "glassbox.shapes_cnn")


@pytest.mark.parametrize("name", ["shapes", "shapes-shortcut"])
def test_default_cam_layer_is_the_last_spatial_block(name: str) -> None:
    model = _load(name)
    layer = dict(model.named_modules())[_config(name)["explain"]["default_cam_layer"]]
    seen: list[torch.Size] = []
    layer.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.inference_mode():
        model(torch.zeros(1, 3, 64, 64))
    assert seen == [torch.Size([1, 128, 8, 8])]


def test_shapes_accuracy() -> None:
    assert _accuracy("shapes", generate(1000, TEST_SEED)) >= 0.97


def test_onnx_matches_torch() -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(REPOSITORY / "shapes-onnx" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["pixels"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    model = _load("shapes")
    pixels = _normalise(generate(33, TEST_SEED + 1).images, "shapes-onnx")
    with torch.inference_mode():
        expected = model(pixels).numpy()
    for batch in (pixels[:1], pixels):  # dynamic batch axis
        (logits,) = session.run(["logits"], {"pixels": batch.numpy()})
        assert np.abs(logits - expected[: len(batch)]).max() <= 1e-4


def test_shortcut_model_relies_on_the_patch() -> None:
    with_label_patch = _accuracy("shapes-shortcut", generate(600, TEST_SEED, shortcut="train"))
    with_random_patch = _accuracy("shapes-shortcut", generate(600, TEST_SEED, shortcut="test"))
    assert with_label_patch >= 0.95
    assert with_random_patch <= with_label_patch - 0.3


def test_shortcut_toml_documents_the_patch() -> None:
    config = _config("shapes-shortcut")
    assert config["shortcut"]["corner"] == PATCH_CORNER and config["shortcut"]["size"] == PATCH_SIZE
    assert [tuple(c) for c in config["shortcut"]["colours"]] == list(PATCH_COLOURS)
    assert "patch" in config["description"] and PATCH_CORNER in config["description"]


def test_shipped_named_sets_are_what_demo_train_writes(tmp_path: Path) -> None:
    write_validation_sets(tmp_path, seed=0)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("dataset.toml"))
    assert written == sorted(p.relative_to(REPOSITORY) for p in REPOSITORY.rglob("dataset.toml"))
    for path in written:
        assert (tmp_path / path).read_text() == (REPOSITORY / path).read_text(), path
