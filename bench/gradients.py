"""Gradient methods against their references, measured in the same run (medians of --repeats runs).

    python bench/gradients.py [--size 224] [--samples 50] [--steps 50] [--repeats 3]

Prints, on a torchvision resnet18 with random weights and one image:
* saliency (1 and 3 targets) through the orchestrator ÷ the bare forward + backward(s) — the overhead of
  the service's method machinery (target resolution, hooks, aggregation); the goal is ≤ 1.10;
* SmoothGrad and integrated gradients at equal n ÷ Captum's NoiseTunnel(Saliency) and
  IntegratedGradients with their defaults — the speed-up of batched samples/steps; the goal is ≥ 1.3.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import NoiseTunnel
from captum.attr import Saliency as CaptumSaliency
from glassbox.backends.torch_backend import TorchModel
from glassbox.config import Settings
from glassbox.core.cancellation import NEVER_CANCELLED
from glassbox.core.images import InputSpec, prepare
from glassbox.core.model_config import ModelConfig, ModelFormat
from glassbox.methods.base import NoParams
from glassbox.methods.integrated_gradients import IntegratedGradientsParams
from glassbox.methods.service import AttributionImage, AttributionRequest, attribute
from glassbox.methods.smoothgrad import SmoothGradParams
from glassbox.methods.targets import TargetSpec
from glassbox.models.architectures import build_architecture


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    size = args.size
    config = ModelConfig(
        format=ModelFormat.SAFETENSORS,
        weights="-",
        labels=tuple(f"class{i}" for i in range(1000)),
        input=InputSpec(size, size),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        architecture="resnet18",
        default_cam_layer="layer4",
    )
    model = TorchModel(
        "resnet18", "1", config, "-", build_architecture("resnet18", 1000), torch.device("cpu")
    )
    network = model.differentiable()
    image = torch.rand(3, size, size)
    images = [AttributionImage(prepare(image, config.input))]
    settings = Settings()

    def ours(method: str, params: object, targets: tuple[int, ...] = (3,)) -> Callable[[], object]:
        request = AttributionRequest("resnet18", "1", method, params, TargetSpec(class_indices=targets))
        return lambda: attribute(model, request, images, NEVER_CANCELLED, settings)

    def bare(targets: int) -> Callable[[], object]:
        def run() -> None:
            x = image[None].clone().requires_grad_(True)
            logits = network(x)
            for t in range(targets):
                torch.autograd.grad(logits[0, 3 + t], x, retain_graph=t < targets - 1)

        return run

    rows = []
    for k in (1, 3):
        reference = median_seconds(bare(k), args.repeats)
        measured = median_seconds(ours("saliency", NoParams(), tuple(range(3, 3 + k))), args.repeats)
        rows.append((f"saliency, {k} target(s) ÷ bare forward + {k} backward", measured, reference))
    x = image[None]
    captum_sg = NoiseTunnel(CaptumSaliency(network))
    reference = median_seconds(
        lambda: captum_sg.attribute(
            x, nt_type="smoothgrad", nt_samples=args.samples, stdevs=0.15, target=3, abs=False
        ),
        args.repeats,
    )
    measured = median_seconds(ours("smoothgrad", SmoothGradParams(samples=args.samples)), args.repeats)
    rows.append((f"smoothgrad n={args.samples} ÷ Captum NoiseTunnel(Saliency)", measured, reference))
    reference = median_seconds(
        lambda: CaptumIG(network).attribute(x, target=3, n_steps=args.steps), args.repeats
    )
    measured = median_seconds(
        ours("integrated_gradients", IntegratedGradientsParams(steps=args.steps)), args.repeats
    )
    rows.append(
        (f"integrated gradients steps={args.steps} ÷ Captum IntegratedGradients", measured, reference)
    )
    print(f"resnet18, {size}x{size}, {torch.get_num_threads()} threads, median of {args.repeats}")
    for name, measured, reference in rows:
        print(f"{name:60s} {measured:8.3f} s / {reference:8.3f} s = {measured / reference:5.2f}")


if __name__ == "__main__":
    main()
