"""The shipped demo models learned shapes, not their generator: `shapes` classifies shapes from settings its
training never drew and from an independent renderer; `shapes-shortcut` still learned the patch; and both
keep some first-layer channels alive on flat images, which the generative methods start from."""

from __future__ import annotations

import pytest
import torch
from glassbox.demo.independent_shapes import render_independent_shapes
from glassbox.demo.shape_styles import TRAINING, VARIANT
from glassbox.demo.shapes import generate
from test_demo_models import _accuracy, _load, _normalise

TEST_SEED = 525_252  # not one of the seeds used by glassbox.demo.train


def _accuracy_on(name: str, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.inference_mode():
        predictions = _load(name)(_normalise(images, name)).argmax(1)
    return float((predictions == labels).float().mean())


def test_shapes_generalises_to_a_held_out_generator_variant() -> None:
    """VARIANT draws sizes, thicknesses, stretches, cuts, outline widths and noise only from values the
    TRAINING style never draws, and a background kind (radial vignettes) training never shows."""
    assert _accuracy("shapes", generate(600, TEST_SEED, style=VARIANT)) >= 0.97


def test_shapes_is_accurate_on_the_widened_style() -> None:
    assert _accuracy("shapes", generate(600, TEST_SEED + 1, style=TRAINING)) >= 0.93


def test_shapes_classifies_shapes_drawn_by_an_independent_renderer() -> None:
    images, labels = render_independent_shapes(240, TEST_SEED)
    assert _accuracy_on("shapes", images, labels) >= 0.95


def test_shortcut_model_still_reads_the_patch_not_the_shape() -> None:
    """Without a patch that names the class, the shortcut model is little better than chance."""
    images, labels = render_independent_shapes(240, TEST_SEED)
    assert _accuracy_on("shapes-shortcut", images, labels) <= 0.6


@pytest.mark.parametrize("name", ["shapes", "shapes-shortcut"])
@pytest.mark.parametrize("grey", [0.25, 0.5, 0.75])
def test_first_layer_responds_to_a_flat_image(name: str, grey: float) -> None:
    """Feature and class visualisation start from a nearly flat mid-grey image (Lucent's Fourier noise of
    sd 0.01): the gradient reaching the pixels passes through the first layer's ReLUs, so if every
    first-layer channel is off on such an image the gradient is exactly zero and the optimisation never
    moves. After normalisation a flat image near the training mean is ≈ 0 and the first conv has no
    bias, so the sign of the first batch norm's shift decides; trained freely, every shift goes negative.
    Training holds eight of them at 0.1 or above (`Recipe.first_layer_alive`), which this checks on the
    shipped weights, at mid-grey and on darker and lighter flat images."""
    model = _load(name)
    first_block = model.features[:3]  # conv, batch norm, ReLU
    with torch.inference_mode():
        response = first_block(_normalise(torch.full((1, 3, 64, 64), grey), name))
    alive = (response[0, :, 8:-8, 8:-8] > 0.01).flatten(1).all(1)  # on across the image's interior
    assert int(alive.sum()) >= 4
