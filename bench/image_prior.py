"""Benchmark and docs picture: class visualisation under the pixel, Fourier and learned-prior
parametrisations, side by side, and how natural and how convincing each is.

    python bench/image_prior.py [--models models] [--model shapes] [--image-set shapes-val]
                                [--seeds 4] [--steps 256] [--picture docs/images/latent-prior-classes.png]
                                [--train-steps 0] [--only-training]

Uses the prior stored beside the model version (`glassbox prior train`, or an image_prior_training
job); with --train-steps N it first times a training of N steps (default settings otherwise) in a
temporary copy of the version folder, leaving the stored prior untouched.

For every class of the model and every parametrisation, --seeds images are rendered with the
class_visualisation job's own core (`visualise_class`'s settings: L2 weight 1, no transforms, Adam
0.05, --steps steps; only the parametrisation differs: plain-RGB pixels, Fourier with decorrelated
colour, or the latent prior's code). Reported per parametrisation:

- target rate: how often the model's top class on the final image is the target; the mean logit and
  softmax probability of the target;
- distance to the set: for each image, the distance to its nearest image of the named set, in the
  prior's latent space (Euclidean distance between encoder means) and in pixel space (RMS over the
  pixels), and the image's round-trip error through the prior's encoder and decoder (RMS); as a
  yardstick, the same figures for fresh real images the prior never saw (the demo generator with
  another seed) are printed on a last line.

The picture: one column per class, one row per parametrisation (the first seed's image), with labels.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from glassbox.demo.datasets import register_generators
from glassbox.demo.shapes import generate
from glassbox.generative.class_visualisation import ClassVisualisation
from glassbox.generative.feature_visualisation import visualise
from glassbox.generative.image_prior import LatentPrior, find_prior, save_prior
from glassbox.generative.optimise import StepSpan, TokenReporter
from glassbox.generative.parametrisations import (
    FOURIER_DECORRELATED,
    PIXEL_RGB,
    Kind,
    ParametrisationSettings,
)
from glassbox.generative.prior_training import PriorTraining, train_prior
from glassbox.generative.transforms import FitInput
from glassbox.models.repository import ModelRepository
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def nearest_distances(
    prior: LatentPrior, images: torch.Tensor, reference: torch.Tensor, reference_codes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: distance to the nearest reference code (latent), to the nearest reference image (pixel
    RMS), and the RMS error of the image through the prior's encoder and decoder (an image the prior can
    represent comes back; one off its manifold does not)."""
    codes = prior.encode(images)
    latent = torch.cdist(codes, reference_codes).min(dim=1).values
    flat, ref = images.flatten(1), reference.flatten(1)
    pixel = (torch.cdist(flat, ref).min(dim=1).values.square() / flat.shape[1]).sqrt()
    with torch.no_grad():
        round_trip = (prior.network.decode(codes) - images).square().flatten(1).mean(dim=1).sqrt()
    return latent, pixel, round_trip


def render(
    model: object, settings: ParametrisationSettings, target: int, seeds: int, steps: int
) -> tuple[torch.Tensor, float]:
    spec = ClassVisualisation(model=model, class_index=target, height=64, width=64, steps=steps)  # type: ignore[arg-type]
    spec = replace(spec, parametrisation=settings)
    job = replace(spec.as_feature_visualisation(), batch=seeds)
    started = time.perf_counter()
    rendered = visualise(
        job, generator=torch.Generator().manual_seed(0), progress=StepSpan(TokenReporter(), steps)
    )
    return rendered.images, time.perf_counter() - started


def labelled_grid(
    columns: list[str], rows: list[str], tiles: list[list[torch.Tensor]], scale: int = 1
) -> Image.Image:
    side = tiles[0][0].shape[-1] * scale
    left, top, gap = 84, 18, 4
    canvas = Image.new("RGB", (left + len(columns) * (side + gap), top + len(rows) * (side + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate(columns):
        draw.text((left + j * (side + gap) + 4, 3), name, fill="black")
    for i, name in enumerate(rows):
        draw.text((4, top + i * (side + gap) + side // 2 - 6), name, fill="black")
        for j, tile in enumerate(tiles[i]):
            array = (tile.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            picture = Image.fromarray(array).resize((side, side), Image.Resampling.NEAREST)
            canvas.paste(picture, (left + j * (side + gap), top + i * (side + gap)))
    return canvas


def time_training(repository: ModelRepository, args: argparse.Namespace, images: torch.Tensor) -> None:
    entry = repository.entry(args.model)
    spec = PriorTraining(
        images=images,
        model=args.model,
        version=entry.version,
        image_set=args.image_set,
        steps=args.train_steps,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trained = train_prior(spec, seed=0, device=CPU, progress=StepSpan(TokenReporter(), spec.steps))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    with tempfile.TemporaryDirectory() as scratch:
        save_prior(Path(scratch), trained.network, trained.info)
    print(
        f"training: {spec.steps} steps of {spec.batch_size} images ({len(images)} in the set, latent "
        f"{spec.latent_size}, {trained.info.parameters} parameters) in {seconds:.1f} s = "
        f"{1000 * seconds / spec.steps:.1f} ms/step ({1000 * cpu_seconds / spec.steps:.1f} ms of CPU time), "
        f"{torch.get_num_threads()} threads; reconstruction RMSE "
        f"{trained.initial_reconstruction_rmse:.4f} -> {trained.info.reconstruction_rmse:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--model", default="shapes")
    parser.add_argument("--image-set", default="shapes-val")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--picture", type=Path, default=ROOT / "docs" / "images" / "latent-prior-classes.png")
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument("--only-training", action="store_true", help="time the training and stop")
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, torch {torch.__version__}")

    register_generators()
    repository = ModelRepository(args.models, device=CPU)
    repository.load_all()
    model = repository.get(args.model)
    reference = repository.dataset(args.model, args.image_set, max_pixels=1 << 24).images
    if args.train_steps:
        time_training(repository, args, reference)
    if args.only_training:
        return
    prior = find_prior(repository, args.model, "", args.image_set, field="image_set")
    print(
        f"prior: {prior.info.image_set}, {prior.info.images} images, {prior.info.steps} steps, seed "
        f"{prior.info.seed}, latent {prior.info.latent_size}, "
        f"reconstruction RMSE {prior.info.reconstruction_rmse:.4f}"
    )
    reference_codes = prior.encode(reference)
    fresh = generate(len(reference), seed=424242, size=reference.shape[-1]).images
    fresh_latent, fresh_pixel, fresh_round_trip = nearest_distances(prior, fresh, reference, reference_codes)
    fit = FitInput(model.config.input.height, model.config.input.width)

    parametrisations = {
        "pixel": PIXEL_RGB,
        "fourier": FOURIER_DECORRELATED,
        "latent prior": ParametrisationSettings(kind=Kind.LATENT_PRIOR, init_sd=1.0, prior=prior),
    }
    tiles: list[list[torch.Tensor]] = []
    print(
        f"{len(model.labels)} classes x {args.seeds} seeds, {args.steps} steps; distances to the nearest "
        f"of the {len(reference)} images of {args.image_set} (fresh real images: latent "
        f"{fresh_latent.mean():.2f}, pixel RMS {fresh_pixel.mean():.3f})"
    )
    columns = ["top class = target", "target logit", "target probability", "latent distance", "pixel RMS"]
    columns.append("round-trip RMS")
    print(f"| parametrisation | {' | '.join(columns)} | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, settings in parametrisations.items():
        hits, logits, probabilities, latents, pixels, trips, seconds = 0, [], [], [], [], [], 0.0
        tiles.append([])
        for target in range(len(model.labels)):
            images, took = render(model, settings, target, args.seeds, args.steps)
            seconds += took
            scores = model.logits(fit(images))
            hits += int((scores.argmax(dim=1) == target).sum())
            logits.append(scores[:, target])
            probabilities.append(F.softmax(scores, dim=1)[:, target])
            latent, pixel, round_trip = nearest_distances(prior, images, reference, reference_codes)
            latents.append(latent)
            pixels.append(pixel)
            trips.append(round_trip)
            tiles[-1].append(images[0])
        total = len(model.labels) * args.seeds
        print(
            f"| {name} | {hits}/{total} | {torch.cat(logits).mean():.1f} "
            f"| {torch.cat(probabilities).mean():.3f} | {torch.cat(latents).mean():.2f} "
            f"| {torch.cat(pixels).mean():.3f} | {torch.cat(trips).mean():.3f} | {seconds:.0f} |"
        )
    print(
        f"| fresh real images (yardstick) | | | | {fresh_latent.mean():.2f} | {fresh_pixel.mean():.3f} "
        f"| {fresh_round_trip.mean():.3f} | |"
    )
    grid = labelled_grid(list(model.labels), list(parametrisations), tiles)
    grid.quantize(colors=128).save(args.picture, optimize=True)  # a third of the size, no visible change
    print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
