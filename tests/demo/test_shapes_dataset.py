"""The shapes dataset generator: determinism, tensor contract, geometry, contrast and the shortcut patch."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch
from glassbox.demo.shape_styles import CLASSIC, TRAINING, VARIANT, Intervals, Style, draw
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


def test_classic_is_the_default_style() -> None:
    default, classic = generate(30, seed=5), generate(30, seed=5, style=CLASSIC)
    assert torch.equal(default.images, classic.images) and torch.equal(default.masks, classic.masks)


@pytest.mark.parametrize("style", [TRAINING, VARIANT], ids=lambda s: s.name)
def test_widened_styles_keep_the_contract(style: Style) -> None:
    data = generate(120, seed=9, style=style)
    assert data.images.shape == (120, 3, SIZE, SIZE) and data.images.dtype == torch.float32
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    assert torch.bincount(data.labels, minlength=len(CLASSES)).tolist() == [20] * len(CLASSES)
    assert (data.masks.flatten(1).sum(1) >= 12).all()  # every object visible, even cut by the border
    assert torch.equal(data.images, generate(120, seed=9, style=style).images)


def test_training_style_widens_the_classic_one() -> None:
    data = generate(600, seed=8, style=TRAINING)
    extent = _extent(data.masks) / SIZE
    assert extent.min() < 0.27 and extent.max() > 0.85  # smaller and larger than the classic 0.3-0.7
    touching = data.masks[:, 0].any(1) | data.masks[:, -1].any(1) | data.masks[:, :, 0].any(1)
    assert touching.float().mean() > 0.1  # some shapes run off the border


def _overlap(a: Intervals, b: Intervals) -> float:
    return sum(max(0.0, min(hi, hi2) - max(lo, lo2)) for lo, hi in a for lo2, hi2 in b)


def test_variant_draws_only_values_training_never_draws() -> None:
    for field in fields(Style):
        train_range, variant_range = getattr(TRAINING, field.name), getattr(VARIANT, field.name)
        if field.type == "Intervals":
            assert _overlap(train_range, variant_range) == 0.0, field.name
    assert set(VARIANT.backgrounds) - set(TRAINING.backgrounds) == {"radial"}


def test_draw_stays_in_the_union_of_intervals() -> None:
    values = draw(np.random.default_rng(0), ((0.0, 0.1), (0.5, 0.6)), 2000)
    assert (((values >= 0) & (values <= 0.1)) | ((values >= 0.5) & (values <= 0.6))).all()
    assert 0.4 < (values < 0.3).mean() < 0.6


def test_shortcut_patch_only_in_the_classic_style() -> None:
    with pytest.raises(ValueError, match="classic"):
        generate(4, seed=0, shortcut="train", style=TRAINING)
