"""Benchmark: feature visualisation as a Glassbox job over gRPC against Lucent's `render_vis`, same run.

    python bench/feature_vis.py [--models models] [--units features.10:4,features.14:16]
                                [--size 128] [--steps 256] [--repeats 3]

A GlassboxServer (in-process job engine) runs in this process on 127.0.0.1:0 over a temporary model
repository holding the demo model `shapes` (the trained one from --models, else a random-weights
stand-in of the same architecture). For each unit (layer:channel; the defaults are channels of a middle
and of the last conv block that the trained model's visualisations raise well), one channel objective
is rendered with the same settings on both sides: --size² image, --steps steps, Fourier parametrisation
with decorrelated colour (sd 0.01), Lucent's standard transforms (pad 12 at 0.5, jitter 8, scale
0.90–1.10, rotate −10..10°, jitter 4), Adam lr 0.05, no resizing after the transforms (Lucent:
`fixed_image_size=0` turns off its upsampling to 224; Glassbox upsamples only images smaller than the
model's 64×64 input), on the same `NormalizedModel` (Lucent on a private copy: `Reference`) and device.

Timed: the Glassbox job end to end (SubmitJob until the final WatchJob message: validation, queue,
worker thread, progress publishing, PNG and tensor encoding, transport) and the core call in-process,
against Lucent's `render_vis` (torch-lucent 0.1.8). Each is the median of --repeats runs, the three
taking turns (the machine is shared, so its load drifts). The channel's mean activation on each side's
final image (no transforms, read by a hook of the benchmark's own) shows both did the same optimisation.
Target (docs/benchmarks.md records the table): the job at ≤ 1.0 × Lucent's time.
"""

from __future__ import annotations

import argparse
import copy
import logging
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import torch
from glassbox.config import load_settings
from glassbox.demo.shapes import CLASSES
from glassbox.generative.feature_visualisation import FeatureVisualisation, visualise
from glassbox.generative.objectives import Channel
from glassbox.generative.optimise import StepSpan, TokenReporter
from glassbox.models.architectures import build_architecture
from glassbox.server.app import GlassboxServer
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gpb
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as jpb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]


def write_repository(root: Path, trained: Path | None) -> str:
    """`root/shapes/1`: the trained demo model when there is one (its whole folder: the named sets its
    [monitoring] section names come along), else random weights. Returns which."""
    if trained is not None:
        shutil.copytree(trained.parent, root / "shapes")
        return f"trained ({trained})"
    folder = root / "shapes" / "1"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    net = build_architecture("glassbox.shapes_cnn", len(CLASSES))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    labels = ", ".join(f'"{c}"' for c in CLASSES)
    (folder / "model.toml").write_text(
        'format = "safetensors"\narchitecture = "glassbox.shapes_cnn"\nweights = "model.safetensors"\n'
        f"labels = [{labels}]\n[input]\nheight = 64\nwidth = 64\n"
        "mean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\n"
    )
    return "random-weights stand-in"


def interleaved_medians(runs: list[Callable[[], object]], repeats: int) -> list[tuple[float, object]]:
    """Median seconds (and last result) of each run, the runs taking turns so that a change in the
    machine's load (it is shared) falls on all of them alike."""
    times: list[list[float]] = [[] for _ in runs]
    results: list[object] = [None] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            started = time.perf_counter()
            results[i] = run()
            times[i].append(time.perf_counter() - started)
    return [(statistics.median(t), r) for t, r in zip(times, results, strict=True)]


class Reference:
    """Lucent's `render_vis` and the benchmark's activation probe, on a private copy of the served network.

    Both hook the modules they run, and a plain torch hook acts on every thread's forward through that
    module. The served module meanwhile runs the server's own background work (the demo model's
    [monitoring] robustness evaluation: PGD forwards and input gradients on the compute thread), so
    hooks there would reach into it: Lucent's `render_vis` leaves a hook on every submodule that keeps
    the latest output of any thread, and its objective would read a job's activation and backpropagate
    through (and free) that job's graph; a probe whose hook returns a value replaces the layer's output
    of every forward running meanwhile. The server's own hooks (`common.hooks.CallHooks`) act only for
    their call; a reference library's cannot be made to, so it gets a module of its own.
    """

    def __init__(self, served: torch.nn.Module) -> None:
        self.module = copy.deepcopy(served)
        _remove_hooks(self.module)  # hooks of calls that were running on the served module

    def render(self, layer: str, channel: int, size: int, steps: int) -> torch.Tensor:
        from lucent.optvis import param, render

        torch.manual_seed(0)
        np.random.seed(0)
        try:
            images = render.render_vis(
                self.module,
                f"net_{layer.replace('.', '_')}:{channel}",
                param_f=lambda: param.image(size),
                thresholds=(steps,),
                preprocess=False,
                progress=False,
                show_image=False,
                fixed_image_size=0,
            )
        finally:
            _remove_hooks(self.module)  # render_vis never removes the hooks it adds
        return torch.from_numpy(images[-1]).permute(0, 3, 1, 2)

    def activation(self, layer: str, channel: int, image: torch.Tensor) -> float:
        """The channel's mean activation on `image` [1, 3, H, W], read by a forward hook."""
        captured: dict[str, torch.Tensor] = {}

        def record(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            captured["out"] = output.detach().clone()

        handle = self.module.net.get_submodule(layer).register_forward_hook(record)
        try:
            with torch.no_grad():
                self.module(image.to(next(self.module.parameters()).device))
        finally:
            handle.remove()
        return float(captured["out"][:, channel].mean())


def _remove_hooks(module: torch.nn.Module) -> None:
    for submodule in module.modules():
        submodule._forward_hooks.clear()
        submodule._forward_pre_hooks.clear()


def glassbox_job(stub: job_service_pb2_grpc.JobServiceStub, layer: str, channel: int, size: int, steps: int):
    spec = gpb.FeatureVisualisationSpec(
        model="shapes",
        seed=0,
        objective=gpb.Objective(channel=gpb.ChannelObjective(layer=layer, channel=channel)),
        height=size,
        width=size,
        steps=steps,
        parametrisation=gpb.ImageParametrisation(
            kind=gpb.PARAMETRISATION_FOURIER, colour=gpb.COLOUR_SPACE_DECORRELATED
        ),
        transforms=gpb.TransformSettings(preset=gpb.TRANSFORM_PRESET_STANDARD),
        learning_rate=0.05,
    )
    job = stub.SubmitJob(jpb.SubmitJobRequest(feature_visualisation=spec)).job
    last = None
    for update in stub.WatchJob(jpb.WatchJobRequest(job_id=job.id)):
        last = update.job
    if last is None or last.state != jpb.JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"job did not succeed: {last}")
    pixels = last.feature_visualisation.images[0].pixels
    return torch.from_numpy(np.frombuffer(pixels.data, dtype="<f4").reshape(tuple(pixels.shape)).copy())[None]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument(
        "--units", default="features.10:4,features.14:16", help="layer:channel, comma-separated"
    )
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    trained = args.models / "shapes" / "1"
    with tempfile.TemporaryDirectory() as tmp:
        which = write_repository(Path(tmp), trained if (trained / "model.toml").exists() else None)
        settings = load_settings(
            address="127.0.0.1:0", model_repository=Path(tmp), metrics={"port": 0}, cache={"enabled": False}
        )
        server = GlassboxServer(settings)
        port = server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        model = server.context.repository.get("shapes")
        reference = Reference(model.module)
        device = model.device
        print(f"# feature visualisation benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, device {device}; shapes model: {which}"
        )
        print(
            f"# channel objectives, {args.size}x{args.size}, {args.steps} steps, Fourier + decorrelated "
            f"colour, standard transforms, Adam 0.05; median of {args.repeats}"
        )
        print(
            "| layer:channel | Glassbox job (gRPC) s | Glassbox in-process s | Lucent render_vis s "
            "| job / Lucent | activation Glassbox | activation Lucent |"
        )
        print("|---|---|---|---|---|---|---|")
        worst = 0.0
        for unit in args.units.split(","):
            layer, channel_index = unit.split(":")[0], int(unit.split(":")[1])
            glassbox_job(stub, layer, channel_index, args.size, 8)  # warm-up: first-call allocations
            reference.render(layer, channel_index, args.size, 8)
            spec = FeatureVisualisation(
                model=model,
                objective=Channel(layer, channel_index).bind(model, "objective"),
                height=args.size,
                width=args.size,
                steps=args.steps,
            )
            (job_s, job_image), (core_s, _), (lucent_s, lucent_image) = interleaved_medians(
                [
                    lambda layer=layer, index=channel_index: glassbox_job(
                        stub, layer, index, args.size, args.steps
                    ),
                    lambda spec=spec: visualise(
                        spec,
                        generator=torch.Generator().manual_seed(0),
                        progress=StepSpan(TokenReporter(), args.steps),
                    ),
                    lambda layer=layer, index=channel_index: reference.render(
                        layer, index, args.size, args.steps
                    ),
                ],
                args.repeats,
            )
            ratio = job_s / lucent_s
            worst = max(worst, ratio)
            ours = reference.activation(layer, channel_index, job_image)
            theirs = reference.activation(layer, channel_index, lucent_image)
            cells = [unit, f"{job_s:.3f}", f"{core_s:.3f}", f"{lucent_s:.3f}", f"{ratio:.2f}", f"{ours:.3f}"]
            print("| " + " | ".join([*cells, f"{theirs:.3f}"]) + " |")
        verdict = "meets" if worst <= 1.0 else "MISSES"
        print(f"\nworst job / Lucent ratio {worst:.2f}: {verdict} the target of <= 1.0")
        channel.close()
        server.stop(grace=0)
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
