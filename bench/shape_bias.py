"""What a shape_bias job costs, and what batching the style transfers buys.

    .venv/bin/python bench/shape_bias.py [--steps 50] [--images 16] [--repeats 3]

Times, on the demo model `shapes` and its `shapes-val`, in one process and taking turns (median of
`--repeats`):

- the job's core (`shape_bias.measure`): `--images` cue-conflict images (object construction) made in
  one batched style transfer, then classified through the serving core;
- the same images made one at a time (`style_transfer.stylise` on a batch of one, as the
  `style_transfer` kind runs), composites included, and classified the same way.

Prints seconds per cue-conflict image for both and the ratio batched / one at a time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from glassbox.config import Settings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import CancellationToken
from glassbox.demo.datasets import register_generators
from glassbox.generative.optimise import StepSpan, TokenReporter
from glassbox.generative.shape_bias import composites, draw_pairs, measure
from glassbox.generative.style_transfer import stylise
from glassbox.models.repository import ModelRepository
from glassbox.serving.execution import SCHEDULED
from glassbox.wire.kinds.shape_bias import validate_shape_bias
from glassbox_client._generated.glassbox.v1 import datasets_pb2
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import shape_bias_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--images", type=int, default=16, help="cue-conflict images (pairs of 2 classes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: no spinning on a busy machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings()
    register_generators()
    repository = ModelRepository(ROOT / "models", device=torch.device("cpu"))
    repository.load_all()
    spec = pb.ShapeBiasSpec(
        model="shapes",
        images=datasets_pb2.ImageSet(named="shapes-val"),
        classes=[gen.ClassRef(index=0), gen.ClassRef(index=1)],
        images_per_pair=args.images // 2,
        content_layer="features.10",
        style_layers=["features.2", "features.6"],
        steps=args.steps,
        construction=pb.CUE_CONFLICT_CONSTRUCTION_OBJECT,
    )
    job = validate_shape_bias(spec, repository, settings)
    call = CallContext(job.style.model, CancellationToken(), settings.attribution, compute=SCHEDULED)

    def batched() -> None:
        measure(job, call, generator=torch.Generator().manual_seed(0), reporter=TokenReporter())

    def one_at_a_time() -> None:
        data, masks = job.data, job.data.require_masks("images")
        for _, _, c, s in draw_pairs(job, torch.Generator().manual_seed(0)):
            style = data.images[s][None]
            content, real = composites(data.images[c][None], masks[c][None], style, masks[s][None])
            made = stylise(
                job.style,
                content,
                style,
                init_from_content=True,
                content_masks=real,
                generator=torch.Generator(),
                progress=StepSpan(TokenReporter(), args.steps),
            )
            call.forward(made[0].image[None])

    times: dict[str, list[float]] = {"batched": [], "one at a time": []}
    for _ in range(args.repeats):
        for name, run in (("batched", batched), ("one at a time", one_at_a_time)):
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.images} cue-conflict images, {args.steps} steps, torch threads {torch.get_num_threads()}")
    for name, seconds in medians.items():
        print(f"  {name:<14} {seconds:7.2f} s   {seconds / args.images:6.3f} s per image")
    print(f"  ratio batched / one at a time: {medians['batched'] / medians['one at a time']:.2f}x")


if __name__ == "__main__":
    main()
