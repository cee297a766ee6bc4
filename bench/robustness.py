"""PGD-L∞ (ε = 8/255, 10 steps, α = 2/255, no random start, final iterate) over 256 held-out demo images:
Glassbox's attack against torchattacks 3.5.1 on the same model, images and settings, in one run; prints
the time ratio (target ≤ 1.0×) and checks that both give the same robust accuracy.

    .venv/bin/python bench/robustness.py [--images 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torchattacks
from glassbox.common.threat import Norm
from glassbox.config import AttributionSettings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import NEVER_CANCELLED
from glassbox.demo.datasets import register_generators
from glassbox.models.repository import ModelRepository
from glassbox.robustness.gradient_attacks import GradientAttack, gradient_attack
from glassbox.serving.execution import SCHEDULED

EPSILON = 8 / 255


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    register_generators()
    repository = ModelRepository(Path(__file__).resolve().parents[1] / "models", device=torch.device("cpu"))
    repository.load_all()
    model = repository.get("shapes")
    data = repository.dataset("shapes", "shapes-val", max_pixels=10**8)
    repeat = (args.images + len(data) - 1) // len(data)
    x, y = data.images.repeat(repeat, 1, 1, 1)[: args.images], data.labels.repeat(repeat)[: args.images]
    attack = GradientAttack(
        Norm.LINF, steps=10, relative_step_size=0.25, random_start=False, final_iterate_only=True
    )
    reference = torchattacks.PGD(
        model.differentiable(), eps=EPSILON, alpha=EPSILON / 4, steps=10, random_start=False
    )

    def ours() -> float:
        run = gradient_attack(
            model,
            CallContext(model, NEVER_CANCELLED, AttributionSettings(), compute=SCHEDULED),
            attack,
            x,
            y,
            torch.full((len(x),), EPSILON),
        )
        return float((~run.fooled).float().mean())

    def theirs() -> float:
        return float((model.logits(reference(x, y)).argmax(1) == y).float().mean())

    timings: dict[str, list[float]] = {"glassbox": [], "torchattacks": []}
    accuracy = {}
    for _ in range(args.repeats):
        for name, run in (("glassbox", ours), ("torchattacks", theirs)):
            started = time.perf_counter()
            accuracy[name] = run()
            timings[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in timings.items()}
    print(
        f"PGD-Linf eps=8/255, 10 steps, {len(x)} images, {torch.get_num_threads()} threads, "
        f"best of {args.repeats}"
    )
    for name in best:
        print(f"  {name:13s} {best[name]:.3f} s   robust accuracy {accuracy[name]:.4f}")
    print(f"  ratio glassbox / torchattacks: {best['glassbox'] / best['torchattacks']:.2f}x")


if __name__ == "__main__":
    main()
