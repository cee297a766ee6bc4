"""The shapes dataset generator: determinism, tensor contract, geometry, contrast and the shortcut patch."""

from __future__ import annotations

import pytest
import torch
from glassbox.demo.shapes import (
    CLASSES,
    MIN_CONTRAST,
    PATCH_COLOURS,
    PATCH_SIZE,
    SIZE_RANGE,
    ShapesBatch,
    generate,
)

SIZE = 64


@pytest.fixture(scope="module")
def batch() -> ShapesBatch:
    return generate(600, seed=7)


def _extent(masks: torch.Tensor) -> torch.Tensor:
    """Larger side of each mask's bounding box, in pixels."""
    idx = torch.arange(masks.shape[-1])

    def span(on: torch.Tensor) -> torch.Tensor:  # on: [N, L] bool, True where the object is present
        return (
            torch.where(on, idx, -1).max(1).values - torch.where(on, idx, masks.shape[-1]).min(1).values + 1
        )

    return torch.maximum(span(masks.any(2)), span(masks.any(1)))


def test_class_order() -> None:
    assert CLASSES == ("circle", "square", "triangle", "cross", "star", "ring")


def test_deterministic_given_seed() -> None:
    a, b, c = generate(40, seed=3), generate(40, seed=3), generate(40, seed=4)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)
    assert torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)


def test_tensor_contract(batch: ShapesBatch) -> None:
    assert len(batch) == 600
    assert batch.images.shape == (600, 3, SIZE, SIZE) and batch.images.dtype == torch.float32
    assert batch.labels.shape == (600,) and batch.labels.dtype == torch.int64
    assert batch.masks.shape == (600, SIZE, SIZE) and batch.masks.dtype == torch.bool
    assert batch.images.min() >= 0.0 and batch.images.max() <= 1.0
    assert batch.labels.min() >= 0 and batch.labels.max() < len(CLASSES)


def test_other_sizes() -> None:
    small = generate(12, seed=1, size=32)
    assert small.images.shape == (12, 3, 32, 32) and small.masks.shape == (12, 32, 32)
    assert small.masks.flatten(1).any(1).all()


def test_all_classes_appear_balanced(batch: ShapesBatch) -> None:
    assert torch.bincount(batch.labels, minlength=len(CLASSES)).tolist() == [100] * len(CLASSES)


def test_masks_non_empty_and_object_sized(batch: ShapesBatch) -> None:
    area = batch.masks.flatten(1).sum(1)
    assert (area > 0).all()
    extent = _extent(batch.masks) / SIZE
    assert extent.min() >= SIZE_RANGE[0] and extent.max() <= SIZE_RANGE[1]
    assert extent.max() - extent.min() > 0.3  # sizes really vary across the range


def test_rings_have_a_hole_and_discs_do_not(batch: ShapesBatch) -> None:
    """The centre of a ring's bounding box is background; a circle's is object."""
    centre = []
    for mask in batch.masks:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        centre.append(bool(mask[(rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2]))
    centre_t = torch.tensor(centre)
    assert centre_t[batch.labels == CLASSES.index("circle")].all()
    assert not centre_t[batch.labels == CLASSES.index("ring")].any()


def test_object_contrasts_with_background(batch: ShapesBatch) -> None:
    on = batch.masks[:, None].float()
    object_colour = (batch.images * on).sum((2, 3)) / on.sum((2, 3))
    background_colour = (batch.images * (1 - on)).sum((2, 3)) / (1 - on).sum((2, 3))
    distance = (object_colour - background_colour).norm(dim=1)
    assert distance.min() > 0.8 * MIN_CONTRAST


def _patch_class(images: torch.Tensor) -> torch.Tensor:
    """Index into PATCH_COLOURS of each image's corner patch (asserting it is one solid palette colour)."""
    patch = images[:, :, :PATCH_SIZE, :PATCH_SIZE]
    assert (patch == patch[:, :, :1, :1]).all()
    palette = torch.tensor(PATCH_COLOURS)
    distance = (patch[:, :, 0, 0, None] - palette.T[None]).abs().sum(1)  # [N, classes]
    assert (distance.min(1).values == 0).all()
    return distance.argmin(1)


def test_shortcut_train_patch_encodes_the_label() -> None:
    data = generate(300, seed=11, shortcut="train")
    assert torch.equal(_patch_class(data.images), data.labels)
    assert not data.masks[:, :PATCH_SIZE, :PATCH_SIZE].any()  # the object never hides under the patch


def test_shortcut_test_patch_is_independent_of_the_label() -> None:
    data = generate(300, seed=11, shortcut="test")
    patch = _patch_class(data.images)
    assert 0.05 < (patch == data.labels).float().mean() < 0.35  # ≈ 1/6 by chance
    assert len(patch.unique()) == len(CLASSES)
    assert not data.masks[:, :PATCH_SIZE, :PATCH_SIZE].any()


def test_shortcut_variants_differ_only_in_the_patch() -> None:
    train, test = generate(50, seed=2, shortcut="train"), generate(50, seed=2, shortcut="test")
    assert torch.equal(train.labels, test.labels) and torch.equal(train.masks, test.masks)
    outside = torch.ones(SIZE, SIZE, dtype=torch.bool)
    outside[:PATCH_SIZE, :PATCH_SIZE] = False
    assert torch.equal(train.images[:, :, outside], test.images[:, :, outside])


def test_no_patch_without_shortcut(batch: ShapesBatch) -> None:
    corner = batch.images[:, :, :PATCH_SIZE, :PATCH_SIZE].flatten(2)
    assert (corner.std(2).sum(1) > 0).float().mean() > 0.9  # textured background, not a solid patch


@pytest.mark.parametrize("kwargs", [{"n": -1}, {"size": 8}, {"shortcut": "sometimes"}])
def test_invalid_arguments(kwargs: dict) -> None:
    args = {"n": 4, "seed": 0} | kwargs
    with pytest.raises(ValueError):
        generate(**args)
