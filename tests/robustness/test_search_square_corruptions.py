"""Minimal-ε bisection against a brute-force sweep; the Square attack on the ONNX model; corruptions."""

from __future__ import annotations

import colorsys

import torch
from glassbox.common.threat import Norm, norms
from glassbox.robustness.corruptions import SEVERITIES, Corruption, brighten, corrupt
from glassbox.robustness.gradient_attacks import GradientAttack, gradient_attack
from glassbox.robustness.minimal_epsilon import minimal_epsilons
from glassbox.robustness.square import SquareAttack, square_attack
from support.robustness_harness import call_context, images, repository, shapes

torch.set_num_threads(1)


def test_bisection_agrees_with_a_brute_force_sweep() -> None:
    """On the grid max·k/2^n the bisection lands on the first grid radius that fools each image."""
    count, largest, iterations = 6, 4 / 255, 4
    x, y = images(count)
    attack = GradientAttack(Norm.LINF, steps=5, random_start=False, final_iterate_only=True)

    def fools_at(indices: torch.Tensor, epsilon: torch.Tensor) -> torch.Tensor:
        return gradient_attack(shapes(), call_context(), attack, x[indices], y[indices], epsilon).fooled

    found = minimal_epsilons(fools_at, torch.ones(count, dtype=torch.bool), largest, iterations)
    grid = [largest * k / 2**iterations for k in range(1, 2**iterations + 1)]
    sweep = torch.stack([fools_at(torch.arange(count), torch.full((count,), eps)) for eps in grid])
    for image in range(count):
        flips = sweep[:, image]
        if not bool(flips.any()):
            assert found[image] == float("inf")
            continue
        first = int(flips.nonzero()[0])
        assert bool(flips[first:].all()), "success is monotone in ε on these images"
        assert abs(float(found[image]) - grid[first]) < 1e-9
    assert torch.isfinite(found).any()


def test_misclassified_images_need_no_perturbation() -> None:
    found = minimal_epsilons(
        lambda i, e: torch.ones(len(i), dtype=torch.bool), torch.tensor([True, False]), 0.1, 3
    )
    assert found.tolist() == [0.1 / 8, 0.0]


def test_square_attack_on_onnx_stays_in_budget_and_ball() -> None:
    onnx = repository().get("shapes-onnx")
    x, y = images(16)
    call = call_context(onnx)
    epsilon = 24 / 255
    result = square_attack(
        call,
        SquareAttack(queries=300),
        x,
        y,
        torch.full((16,), epsilon),
        generator=torch.Generator().manual_seed(0),
    )
    assert call.counter.forward <= 16 * 300 and call.counter.backward == 0
    assert norms(result.adversarial - x)[0].max() <= epsilon + 1e-6
    assert result.adversarial.min() >= 0 and result.adversarial.max() <= 1
    predictions = onnx.logits(result.adversarial).argmax(1)
    assert torch.equal(result.fooled, predictions != y)
    assert bool(result.fooled.any()), "24/255 fools the demo model on some images within 300 queries"


def test_corruptions_keep_pixels_valid_and_grow_with_severity() -> None:
    x, _ = images(4)
    generator = torch.Generator().manual_seed(0)
    for corruption in Corruption:
        distances = []
        for severity in SEVERITIES:
            out = corrupt(x, corruption, severity, generator=generator)
            assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
            distances.append(float((out - x).abs().mean()))
        assert distances[-1] > distances[0] > 0, corruption


def test_brightness_is_the_hsv_value_shift() -> None:
    pixel = torch.tensor([0.2, 0.5, 0.1]).view(1, 3, 1, 1)
    h, s, v = colorsys.rgb_to_hsv(0.2, 0.5, 0.1)
    expected = colorsys.hsv_to_rgb(h, s, min(1.0, v + 0.3))
    assert torch.allclose(brighten(pixel, 0.3).flatten(), torch.tensor(expected), atol=1e-6)
