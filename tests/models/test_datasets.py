"""Named image sets beside a model, inline sets, and their proto form: labels, masks and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from glassbox.core.errors import FailedPrecondition, InvalidArgument, NotFound
from glassbox.core.images import InputSpec
from glassbox.demo.shapes import generate
from glassbox.models.datasets import inline_set
from glassbox.models.repository import ModelRepository
from glassbox.wire.image_sets import labelled_images
from glassbox_client._generated.glassbox.v1 import datasets_pb2, tensor_pb2
from support.datasets import png, write_folder_set
from support.model_repository import write_model_version

MAX_PIXELS = 1_000_000
CLASSES = ("circle", "square", "triangle", "cross", "star", "ring")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    root = tmp_path_factory.mktemp("repo")
    write_model_version(root, "net", "1")
    sets = root / "net" / "datasets"
    write_folder_set(sets / "squares")
    (sets / "generated").mkdir()
    (sets / "generated" / "dataset.toml").write_text(
        '[generator]\nname = "glassbox.shapes"\ncount = 12\nseed = 3\nshortcut = "train"\n'
    )
    (sets / "escape").mkdir()
    (sets / "escape" / "dataset.toml").write_text('images = "../../.."\nlabels = "labels.csv"\n')
    write_folder_set(sets / "unmasked-bad-label", masks=False)
    (sets / "unmasked-bad-label" / "labels.csv").write_text("img0.png,dog\n")
    repo = ModelRepository(root, device=torch.device("cpu"))
    repo.load_all()
    return repo


def test_the_datasets_folder_is_not_a_version(repository: ModelRepository) -> None:
    assert [v.version for v in repository.versions("net")] == ["1"]
    assert repository.dataset_names("net") == ["escape", "generated", "squares", "unmasked-bad-label"]


def test_a_folder_set_is_resized_to_the_model_input_with_aligned_masks(repository: ModelRepository) -> None:
    images = repository.dataset("net", "squares", max_pixels=MAX_PIXELS)
    assert images.images.shape == (3, 3, 64, 64)
    assert images.labels.tolist() == [1, 4, 5]
    assert images.names == ("img0.png", "img1.png", "img2.png")
    assert images.masks is not None and images.masks.dtype == torch.bool
    # The 8x8 square at rows 8..15 of 32 becomes rows 16..31 of 64, in the image and in the mask.
    assert images.masks[0, 16:32, 16:32].all() and images.masks[0].sum() == 16 * 16
    assert torch.equal(images.images[0].mean(dim=0) > 0.5, images.masks[0])


def test_a_generated_set_matches_its_generator_and_is_loaded_once(repository: ModelRepository) -> None:
    images = repository.dataset("net", "generated", max_pixels=MAX_PIXELS)
    expected = generate(12, 3, size=64, shortcut="train")
    assert torch.equal(images.images, expected.images)
    assert torch.equal(images.labels, expected.labels.long())
    assert torch.equal(images.masks, expected.masks)
    assert repository.dataset("net", "generated", max_pixels=MAX_PIXELS) is images
    assert len(images.head(5)) == 5 and images.head(0) is images


def test_unknown_and_broken_sets_name_the_problem(repository: ModelRepository) -> None:
    with pytest.raises(NotFound, match="no named set 'nope'") as missing:
        repository.dataset("net", "nope", max_pixels=MAX_PIXELS)
    assert missing.value.field == "named"
    with pytest.raises(FailedPrecondition, match="outside the set's folder"):
        repository.dataset("net", "escape", max_pixels=MAX_PIXELS)
    with pytest.raises(FailedPrecondition, match="label 'dog' is neither"):
        repository.dataset("net", "unmasked-bad-label", max_pixels=MAX_PIXELS)
    assert repository.dataset("net", "squares", max_pixels=MAX_PIXELS).labels is not None


def test_the_shipped_demo_sets_carry_labels_and_masks() -> None:
    repo = ModelRepository(Path(__file__).parents[2] / "models", device=torch.device("cpu"))
    repo.load_all()
    for model in ("shapes", "shapes-onnx", "shapes-shortcut"):
        assert "shapes-val" in repo.dataset_names(model)
    images = repo.dataset("shapes-shortcut", "shapes-val", max_pixels=MAX_PIXELS)
    assert len(images) == 240 and images.masks is not None
    predicted = repo.get("shapes-shortcut").logits(images.images).argmax(dim=1)
    assert (predicted == images.labels).float().mean() > 0.95


def inline(images: list[bytes], labels: list[int] = (), masks: list[bytes] = ()) -> datasets_pb2.ImageSet:
    return datasets_pb2.ImageSet(
        inline=datasets_pb2.InlineImageSet(
            images=[tensor_pb2.Image(encoded=i) for i in images],
            labels=list(labels),
            masks=[tensor_pb2.Image(encoded=m) for m in masks],
        )
    )


def test_an_inline_set_round_trips_through_the_proto(repository: ModelRepository) -> None:
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[:32] = 255
    request = inline([png(image)] * 2, [0, 5], [png(image[:, :, 0])] * 2)
    request.limit = 1
    images = labelled_images(request, repository, "net", max_pixels=MAX_PIXELS)
    assert images.images.shape == (1, 3, 64, 64) and images.labels.tolist() == [0]
    assert images.masks[0, :32].all() and not images.masks[0, 32:].any()


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        (datasets_pb2.ImageSet(), "images", "give the images inline or name a stored set"),
        (inline([]), "images.inline.images", "no images"),
        (
            inline([png(np.zeros((8, 8, 3), np.uint8))], [0, 1]),
            "images.inline.labels",
            "2 labels for 1 images",
        ),
        (inline([png(np.zeros((8, 8, 3), np.uint8))], [6]), "images.inline.labels[0]", "not a class index"),
        (inline([b"not an image"]), "images.inline.images[0].encoded", ""),
        (
            inline([png(np.zeros((8, 8, 3), np.uint8))], [], [png(np.zeros((4, 4), np.uint8))]),
            "images.inline.masks[0]",
            "mask is",
        ),
        (datasets_pb2.ImageSet(named="squares", limit=-1), "images.limit", "limit must be"),
        (datasets_pb2.ImageSet(named="missing"), "images.named", "no named set"),
    ],
)
def test_bad_sets_name_the_field(
    repository: ModelRepository, request_: datasets_pb2.ImageSet, field: str, message: str
) -> None:
    with pytest.raises((InvalidArgument, NotFound)) as error:
        labelled_images(request_, repository, "net", max_pixels=MAX_PIXELS, field="images")
    assert error.value.field == field
    assert message in error.value.message


def test_jobs_that_need_labels_or_masks_say_so() -> None:
    spec = InputSpec(height=16, width=16)
    unlabelled = inline_set([np.zeros((3, 8, 8), np.float32)], [], [], spec, num_classes=6, max_pixels=100)
    assert unlabelled.images.shape == (1, 3, 16, 16)
    with pytest.raises(InvalidArgument, match="needs a label") as labels:
        unlabelled.require_labels("images")
    assert labels.value.field == "images"
    with pytest.raises(InvalidArgument, match="needs an object mask"):
        unlabelled.require_masks("images")


def test_a_set_over_the_kept_size_is_loaded_again_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import glassbox.models.repository as repository_module

    write_model_version(tmp_path, "net", "1")
    write_folder_set(tmp_path / "net" / "datasets" / "squares")
    repository = ModelRepository(tmp_path, device=torch.device("cpu"))
    repository.load_all()
    monkeypatch.setattr(repository_module, "MAX_KEPT_SET_BYTES", 0)
    first = repository.dataset("net", "squares", max_pixels=MAX_PIXELS)
    second = repository.dataset("net", "squares", max_pixels=MAX_PIXELS)
    assert first is not second and torch.equal(first.images, second.images)
