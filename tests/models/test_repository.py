"""The model repository: formats, versions, broken folders, and names that never become paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from glassbox.core.errors import FailedPrecondition, NotFound
from glassbox.models.repository import ModelRepository, ModelState
from glassbox.serving.units import batching_limits
from support.model_repository import write_model_version


class Payload:
    """An arbitrary class: unpickling it would run code chosen by whoever wrote the file."""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    root = tmp_path_factory.mktemp("repo")
    for version, fmt in (("1", "safetensors"), ("2", "state_dict"), ("3", "torchscript"), ("10", "onnx")):
        write_model_version(root, "net", version, fmt=fmt, seed=1)
    broken = root / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "model.toml").write_text('format = "safetensors"\nweights = "missing.safetensors"\n')
    bad_toml = root / "net" / "11"
    bad_toml.mkdir()
    (bad_toml / "model.toml").write_text("this is = = not toml")
    pickled = write_model_version(root, "pickled", "1", fmt="state_dict")
    torch.save({"obj": Payload()}, pickled / "model.pt")
    repo = ModelRepository(root, device=torch.device("cpu"))
    repo.load_all()
    return repo


def test_every_format_gives_the_same_logits(repository: ModelRepository) -> None:
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    reference = repository.get("net", "1").logits(pixels)
    for version in ("2", "3", "10"):
        assert torch.allclose(repository.get("net", version).logits(pixels), reference, atol=1e-4), version


def test_versions_sort_numerically_and_empty_version_is_newest_ready(repository: ModelRepository) -> None:
    assert [v.version for v in repository.versions("net")] == ["1", "2", "3", "10", "11"]
    assert repository.versions("net")[-1].state is ModelState.FAILED
    assert repository.get("net").version == "10"
    assert repository.get("net").backend_name == "onnxruntime"


def test_broken_folders_are_failed_with_a_reason_and_others_serve(repository: ModelRepository) -> None:
    broken = repository.entry("broken")
    assert broken.state is ModelState.FAILED
    assert "labels" in broken.error or "architecture" in broken.error
    assert "not valid TOML" in repository.entry("net", "11").error
    with pytest.raises(FailedPrecondition, match="not ready"):
        repository.get("broken")
    assert repository.get("net", "1").logits(torch.zeros(1, 3, 64, 64)).shape == (1, 6)


def test_pickled_objects_are_refused(repository: ModelRepository) -> None:
    entry = repository.entry("pickled")
    assert entry.state is ModelState.FAILED
    assert "Weights only load failed" in entry.error or "weights_only" in entry.error


@pytest.mark.parametrize("name", ["../net", "net/../../etc", "/etc/passwd", "..", "", "net\x00"])
def test_names_never_reach_outside_the_repository(repository: ModelRepository, name: str) -> None:
    with pytest.raises(NotFound):
        repository.get(name)


def test_unknown_version_names_the_versions(repository: ModelRepository) -> None:
    with pytest.raises(NotFound, match="no version '7'") as info:
        repository.get("net", "7")
    assert info.value.field == "version"


def test_layers_are_discovered_with_output_shapes(repository: ModelRepository) -> None:
    layers = {layer.name: layer for layer in repository.get("net", "1").layers}
    assert layers["features.0"].kind == "Conv2d"
    assert layers["features.0"].output_shape == (16, 64, 64)
    assert layers["features.14"].cam_compatible
    assert not layers["classifier.2"].cam_compatible


def test_weights_outside_the_folder_are_refused(tmp_path: Path) -> None:
    folder = write_model_version(tmp_path, "escape", "1")
    text = (folder / "model.toml").read_text().replace('weights = "model.safetensors"', 'weights = "../../x"')
    (folder / "model.toml").write_text(text)
    repo = ModelRepository(tmp_path, device=torch.device("cpu"))
    repo.load_all()
    assert "outside the version folder" in repo.entry("escape").error


def test_batching_section_sets_the_dynamic_batcher_and_bad_values_fail_the_version(tmp_path: Path) -> None:
    good = write_model_version(tmp_path, "batched", "1")
    text = (good / "model.toml").read_text()
    (good / "model.toml").write_text(text + "\n[batching]\nmax_rows = 8\nmax_queue_delay_ms = 5\n")
    bad = write_model_version(tmp_path, "batched", "2")
    (bad / "model.toml").write_text(text + "\n[batching]\nmax_rows = 0\n")
    repo = ModelRepository(tmp_path, device=torch.device("cpu"))
    repo.load_all()
    assert batching_limits(repo.get("batched", "1")) == (8, 0.005)
    assert "batching.max_rows must be a positive integer" in repo.entry("batched", "2").error
    default = write_model_version(tmp_path, "plain", "1")
    assert default.exists()
    repo.load_all()
    assert batching_limits(repo.get("plain", "1")) == (16, 0.001)  # the CPU defaults
