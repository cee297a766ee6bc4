"""Benchmark: MACO as a Glassbox job over gRPC against `horama.maco` (0.3.0), same run, equal settings.

    python bench/maco.py [--models models] [--units features.10:4,features.14:16]
                         [--size 256] [--steps 64] [--crops 6] [--repeats 3]

A GlassboxServer (in-process job engine) runs in this process on 127.0.0.1:0 over the model repository
--models (the shipped one by default, whose trained `shapes` it uses; robustness monitoring off). For
each unit (layer:channel) one channel objective is rendered with the same settings and seed on both
sides: a --size² image, --steps NAdam steps at learning rate 1, --crops crops per step with sides
0.25–0.30 of the image (horama's `box_size=(0.20, 0.25)`, which draws from that range), resized to the
model's 64×64 input, noise 0.05, a 1/f magnitude spectrum (written where horama looks for its
downloaded ImageNet spectrum, so both fix the same magnitude), pixels in [0, 1] (horama's
`values_range=(0, 1)`; the model normalises inside), on the same `NormalizedModel` and device.
horama's objective reads the channel with a forward hook on the full model, as a horama user writes it,
on a private copy of the served network (`channel_reader`).

Timed: the Glassbox job end to end (SubmitJob until the final WatchJob message) and the core call
in-process, against `horama.maco`; median of --repeats, the three taking turns (the machine is shared).
Each side's final image is then scored the same way by the benchmark's own code: the channel's mean
activation over nine noiseless crops (side 0.275 of the image, centres on a 3×3 grid at 0.35/0.5/0.65),
so the speed is not bought by doing less. Target (docs/benchmarks.md records the table): the job at
≤ 1.0 × horama's time.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import platform
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # horama draws a tqdm bar per run

import grpc
import numpy as np
import torch
import torch.nn.functional as F
from feature_vis import interleaved_medians
from glassbox.config import load_settings
from glassbox.generative.maco import MacoVisualisation, natural_magnitude, visualise_maco
from glassbox.generative.objectives import Channel
from glassbox.generative.optimise import StepSpan, TokenReporter
from glassbox.server.app import GlassboxServer
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gpb
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as jpb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
NOISE = 0.05


def channel_reader(served: torch.nn.Module, layer: str, channel: int):
    """images [N, 3, 64, 64] → the channel's mean activation over them, through a forward hook.

    The hook runs on a private copy of the served network: a plain torch hook acts on every thread's
    forward through its module, and the served module meanwhile runs the server's own background work
    (its explanation checks on the compute thread), whose outputs it would record. The server's own
    hooks (`common.hooks.CallHooks`) act only for their call; horama's objective cannot."""
    module = copy.deepcopy(served)
    for submodule in module.modules():  # hooks of calls that were running on the served module
        submodule._forward_hooks.clear()
        submodule._forward_pre_hooks.clear()

    def read(images: torch.Tensor) -> torch.Tensor:
        captured: dict[str, torch.Tensor] = {}

        def record(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            captured.setdefault("out", output)

        handle = module.net.get_submodule(layer).register_forward_hook(record)
        try:
            module(images)
        finally:
            handle.remove()
        return captured["out"][:, channel].mean()

    return read


def grid_activation(read, image: torch.Tensor, size: int) -> float:
    """The channel's mean activation over the nine noiseless grid crops of `image` [3, size, size]."""
    side = round(0.275 * size)
    crops = []
    for cy in (0.35, 0.5, 0.65):
        for cx in (0.35, 0.5, 0.65):
            top, left = round(cy * size - side / 2), round(cx * size - side / 2)
            window = image[None, :, top : top + side, left : left + side]
            crops.append(F.interpolate(window, size=(64, 64), mode="bilinear", antialias=True))
    with torch.no_grad():
        return float(read(torch.cat(crops)))


def glassbox_job(stub, layer: str, channel: int, args: argparse.Namespace) -> torch.Tensor:
    spec = gpb.MacoVisualisationSpec(
        model="shapes",
        seed=0,
        objective=gpb.Objective(channel=gpb.ChannelObjective(layer=layer, channel=channel)),
        size=args.size,
        steps=args.steps,
        crops=args.crops,
        noise=NOISE,
        learning_rate=1.0,
        crop_size_min=0.25,
        crop_size_max=0.30,
    )
    job = stub.SubmitJob(jpb.SubmitJobRequest(maco_visualisation=spec)).job
    last = None
    for update in stub.WatchJob(jpb.WatchJobRequest(job_id=job.id)):
        last = update.job
    if last is None or last.state != jpb.JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"job did not succeed: {last}")
    pixels = last.maco_visualisation.image.pixels
    return torch.from_numpy(np.frombuffer(pixels.data, dtype="<f4").reshape(tuple(pixels.shape)).copy())


def horama_maco(read, args: argparse.Namespace, device: torch.device) -> torch.Tensor:
    import horama

    torch.manual_seed(0)
    image, _ = horama.maco(
        read,
        total_steps=args.steps,
        learning_rate=1.0,
        image_size=args.size,
        model_input_size=64,
        noise=NOISE,
        values_range=(0.0, 1.0),
        crops_per_iteration=args.crops,
        box_size=(0.20, 0.25),
        device=str(device),
    )
    return image.detach().cpu()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument(
        "--units", default="features.10:4,features.14:16", help="layer:channel, comma-separated"
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--crops", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    models = args.models.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        # horama loads its magnitude spectrum from ./spectrum_decorrelated.npy (downloading it when absent)
        os.chdir(tmp)
        np.save("spectrum_decorrelated.npy", natural_magnitude(args.size, 1.0).numpy())
        settings = load_settings(
            address="127.0.0.1:0",
            model_repository=models,
            metrics={"port": 0},
            cache={"enabled": False},
            robustness={"monitoring": False},
        )
        server = GlassboxServer(settings)
        port = server.start()
        stub = job_service_pb2_grpc.JobServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        model = server.context.repository.get("shapes")
        device = model.device
        print(f"# MACO benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, device {device}; shapes model from {models}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"# channel objectives, {args.size}x{args.size}, {args.steps} steps, {args.crops} crops of "
            f"0.25-0.30, noise {NOISE}, NAdam 1.0, 1/f magnitude; median of {args.repeats}"
        )
        print(
            "| layer:channel | Glassbox job (gRPC) s | Glassbox in-process s | horama maco s "
            "| job / horama | activation Glassbox | activation horama |"
        )
        print("|---|---|---|---|---|---|---|")
        worst = 0.0
        for unit in args.units.split(","):
            layer, channel_index = unit.split(":")[0], int(unit.split(":")[1])
            read = channel_reader(model.module, layer, channel_index)
            warm = argparse.Namespace(**{**vars(args), "steps": 2})
            glassbox_job(stub, layer, channel_index, warm)  # warm-up: first-call imports and allocations
            horama_maco(read, warm, device)
            spec = MacoVisualisation(
                model=model,
                objective=Channel(layer, channel_index).bind(model, "objective"),
                size=args.size,
                steps=args.steps,
                crops=args.crops,
                noise=NOISE,
            )
            (job_s, job_image), (core_s, _), (horama_s, horama_image) = interleaved_medians(
                [
                    lambda layer=layer, c=channel_index: glassbox_job(stub, layer, c, args),
                    lambda spec=spec: visualise_maco(
                        spec,
                        generator=torch.Generator().manual_seed(0),
                        progress=StepSpan(TokenReporter(), args.steps),
                    ),
                    lambda read=read: horama_maco(read, args, device),
                ],
                args.repeats,
            )
            ratio = job_s / horama_s
            worst = max(worst, ratio)
            ours, theirs = (grid_activation(read, image, args.size) for image in (job_image, horama_image))
            print(
                f"| {unit} | {job_s:.3f} | {core_s:.3f} | {horama_s:.3f} | **{ratio:.2f}** "
                f"| {ours:.3f} | {theirs:.3f} |"
            )
        server.stop(grace=0)
        print(f"# worst job / horama ratio {worst:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
