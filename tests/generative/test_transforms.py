"""Transformation robustness: Lucent's standard settings give the expected sizes, every draw comes from
the generator, jitter is an exact shift, rotation agrees with kornia's (Lucent's), and bad settings
name their field."""

from __future__ import annotations

import kornia
import pytest
import torch
from glassbox.core.errors import InvalidArgument
from glassbox.generative.transforms import (
    NONE,
    STANDARD,
    Compose,
    FitInput,
    Jitter,
    RandomRotate,
    Roll,
    TransformSettings,
)

IMAGE = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_the_standard_transforms_are_lucents_and_keep_the_size_in_bounds() -> None:
    assert (
        STANDARD.pad == 12
        and STANDARD.pad_value == 0.5
        and STANDARD.jitter == 8
        and STANDARD.final_jitter == 4
    )
    assert STANDARD.scales == pytest.approx([0.9 + 0.02 * i for i in range(11)])
    assert sorted(set(STANDARD.rotations_degrees)) == list(range(-10, 11))
    assert STANDARD.rotations_degrees.count(0.0) == 6
    transform = Compose(STANDARD.build())
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        side = transform(IMAGE, generator).shape[-1]
        assert round((64 + 24 - 8) * 0.9) - 4 <= side <= round((64 + 24 - 8) * 1.1) - 4
    assert Compose(NONE.build())(IMAGE, generator) is IMAGE


def test_every_draw_comes_from_the_generator() -> None:
    transform = Compose(STANDARD.build())

    def run(seed: int) -> torch.Tensor:
        return transform(IMAGE, torch.Generator().manual_seed(seed))

    assert torch.equal(run(3), run(3))
    assert any(run(3).shape != run(s).shape or not torch.equal(run(3), run(s)) for s in range(4, 8))


def test_jitter_is_an_exact_shift() -> None:
    out = Jitter(8)(IMAGE, torch.Generator().manual_seed(2))
    assert out.shape[-2:] == (56, 56)
    matches = [
        (top, left)
        for top in range(9)
        for left in range(9)
        if torch.equal(out, IMAGE[..., top : top + 56, left : left + 56])
    ]
    assert len(matches) == 1


def test_rotation_matches_kornias_which_lucent_uses_and_zero_is_the_identity() -> None:
    generator = torch.Generator()
    assert RandomRotate((0.0,))(IMAGE, generator) is IMAGE
    quarter = RandomRotate((90.0,))(IMAGE, generator)
    torch.testing.assert_close(quarter, torch.rot90(IMAGE, k=1, dims=(-2, -1)), atol=1e-5, rtol=0)
    ours = RandomRotate((30.0,))(IMAGE, generator)
    theirs = kornia.rotate(IMAGE, torch.tensor([30.0, 30.0]))
    torch.testing.assert_close(ours[..., 12:52, 12:52], theirs[..., 12:52, 12:52], atol=1e-5, rtol=0)


def test_roll_is_circular_and_fit_input_only_upsamples() -> None:
    rolled = Roll(4)(IMAGE, torch.Generator().manual_seed(0))
    assert torch.equal(rolled.flatten().sort().values, IMAGE.flatten().sort().values)
    fit = FitInput(64, 64)
    assert fit(IMAGE) is IMAGE
    assert fit(torch.rand(1, 3, 128, 128)).shape[-2:] == (128, 128)
    assert fit(torch.rand(1, 3, 40, 80)).shape[-2:] == (64, 64)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"pad": 300}, "transforms.pad"),
        ({"pad_value": 1.5}, "transforms.pad_value"),
        ({"jitter": -1}, "transforms.jitter"),
        ({"scales": (1.0, 0.1)}, "transforms.scales[1]"),
        ({"rotations_degrees": (400.0,)}, "transforms.rotations_degrees[0]"),
        ({"final_jitter": 200}, "transforms.final_jitter"),
    ],
)
def test_bad_settings_name_their_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        TransformSettings(**settings)
    assert caught.value.field == field


def test_jitters_that_would_crop_the_image_away_are_refused() -> None:
    settings = TransformSettings(pad=0, jitter=100, scales=(), rotations_degrees=(), final_jitter=0)
    with pytest.raises(InvalidArgument, match="crop a 64x64 image") as caught:
        settings.check_fits(64, 64)
    assert caught.value.field == "transforms.jitter"
    STANDARD.check_fits(16, 16)
