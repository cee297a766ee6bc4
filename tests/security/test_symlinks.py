"""Symlinks out of the model repository: model and version folders, model.toml, named-set folders and
every file a named set reads (images, labels, masks) that resolve outside are never loaded or read; the
rest of the repository keeps serving, and symlinks that stay inside are followed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from glassbox.core.errors import FailedPrecondition, NotFound
from glassbox.models.repository import ModelRepository, ModelState
from support.datasets import write_folder_set
from support.model_repository import write_model_version

MAX_PIXELS = 1_000_000


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(repository root, a folder outside it holding a perfectly good model and named set)."""
    root, outside = tmp_path / "repository", tmp_path / "elsewhere"
    write_model_version(root, "good", "1")
    write_model_version(outside, "foreign", "1")
    write_folder_set(outside / "set")
    return root, outside


def _repository(root: Path) -> ModelRepository:
    repository = ModelRepository(root, device=torch.device("cpu"))
    repository.load_all()
    return repository


def test_model_and_version_folders_linked_outside_are_skipped_and_logged(
    layout: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    root, outside = layout
    (root / "linked-model").symlink_to(outside / "foreign", target_is_directory=True)
    (root / "good" / "2").symlink_to(outside / "foreign" / "1", target_is_directory=True)
    (root / "good" / "3").symlink_to(root / "good" / "1", target_is_directory=True)  # stays inside
    with caplog.at_level(logging.WARNING):
        repository = _repository(root)
    assert repository.names() == ["good"]
    assert [v.version for v in repository.versions("good")] == ["1", "3"]
    assert all(v.state is ModelState.READY for v in repository.versions("good"))
    with pytest.raises(NotFound):
        repository.get("linked-model")
    with pytest.raises(NotFound):
        repository.get("good", "2")
    skipped = [r.getMessage() for r in caplog.records if "outside the model repository" in r.getMessage()]
    assert len(skipped) == 2
    repository.refresh()  # a poll does not log them again
    assert len([r for r in caplog.records if "outside the model repository" in r.getMessage()]) == 2


def test_a_model_toml_linked_outside_fails_the_version(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    version = root / "good" / "2"
    version.mkdir()
    for item in (outside / "foreign" / "1").iterdir():
        if item.name != "model.toml":
            (version / item.name).write_bytes(item.read_bytes())
    (version / "model.toml").symlink_to(outside / "foreign" / "1" / "model.toml")
    repository = _repository(root)
    entry = repository.entry("good", "2")
    assert entry.state is ModelState.FAILED and "outside its version folder" in entry.error
    assert repository.entry("good", "1").state is ModelState.READY


def test_a_named_set_folder_linked_outside_is_not_listed(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    (root / "good" / "datasets").mkdir()
    (root / "good" / "datasets" / "linked").symlink_to(outside / "set", target_is_directory=True)
    write_folder_set(root / "good" / "datasets" / "own")
    repository = _repository(root)
    assert repository.dataset_names("good") == ["own"]
    with pytest.raises(NotFound):
        repository.dataset("good", "linked", max_pixels=MAX_PIXELS)
    assert len(repository.dataset("good", "own", max_pixels=MAX_PIXELS)) == 3


@pytest.mark.parametrize("linked", ["masks/img1.png", "images/img2.png", "labels.csv", "dataset.toml"])
def test_a_set_file_linked_outside_is_refused(layout: tuple[Path, Path], linked: str) -> None:
    root, outside = layout
    own = root / "good" / "datasets" / "own"
    write_folder_set(own)
    (own / linked).unlink()
    (own / linked).symlink_to(outside / "set" / linked)
    repository = _repository(root)
    if linked == "dataset.toml":
        assert repository.dataset_names("good") == []
        return
    with pytest.raises(FailedPrecondition, match="points outside the set's folder"):
        repository.dataset("good", "own", max_pixels=MAX_PIXELS)
