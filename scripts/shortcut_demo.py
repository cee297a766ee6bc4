"""Regenerate the pictures and numbers of the README section "Does the explanation point at the object or
at the shortcut?": the explanation-evaluation report of the honest demo model, and the same images (each
with the class-coloured corner patch) explained by the honest `shapes` model and by `shapes-shortcut`.

    .venv/bin/python scripts/shortcut_demo.py          # writes docs/images/evaluation-*.png, prints a table

Runs the evaluation core directly on the shipped model repository (no server), seeded: rerunning gives the
same pictures and numbers.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from glassbox import render
from glassbox.core.cancellation import CancellationToken
from glassbox.demo.datasets import register_generators
from glassbox.demo.shapes import PATCH_SIZE
from glassbox.evaluation.evaluate import evaluate
from glassbox.evaluation.figure import report_png
from glassbox.evaluation.spec import (
    EvaluationJob,
    LocalisationOptions,
    MethodConfig,
    Metric,
    Region,
    SensitivityOptions,
)
from glassbox.methods.registry import method_class
from glassbox.methods.service import Aggregation
from glassbox.models.repository import ModelRepository
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
PATCH = Region("corner patch", 0, 0, PATCH_SIZE, PATCH_SIZE)
SHOWN = 5
CELL = 96


def method(name: str, aggregation: Aggregation = Aggregation.SUM, **params: object) -> MethodConfig:
    return MethodConfig(name, name, method_class(name).Params(**params), aggregation)


METHODS = (
    method("saliency", Aggregation.ABS_MAX),
    method("smoothgrad", Aggregation.ABS_MAX, samples=16),
    method("integrated_gradients", steps=32),
    method("grad_cam"),
)


def run(repository: ModelRepository, model: str, images: object, metrics: tuple[Metric, ...], count: int):
    job = EvaluationJob(
        model=repository.get(model, ""),
        images=images.images[:count],
        masks=images.masks[:count],
        labels=images.labels[:count],
        use_labels=True,
        methods=METHODS,
        metrics=metrics,
        localisation=LocalisationOptions(regions=(PATCH,)),
        sensitivity=SensitivityOptions(samples=4),
        example_images=SHOWN,
    )
    return evaluate(job, CancellationToken(), 0, lambda *_: None)


def tile(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB").resize((CELL, CELL), Image.Resampling.NEAREST)


def comparison(reports: dict[str, object], images: torch.Tensor) -> bytes:
    """Rows: the images, then per method the honest and the shortcut model's overlays."""
    font = ImageFont.load_default(size=12)
    label = 250
    rows = [("image", None, None)] + [
        (f"{m.name} · {model}", model, m.name) for m in METHODS for model in reports
    ]
    canvas = Image.new("RGB", (label + SHOWN * (CELL + 6), len(rows) * (CELL + 6)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (text, model, name) in enumerate(rows):
        y = r * (CELL + 6)
        draw.text((4, y + CELL // 2 - 7), text, fill=(20, 20, 20), font=font)
        for k in range(SHOWN):
            if model is None:
                pixels = (images[k].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                cell = tile(render.png(pixels))
            else:
                cell = tile(
                    render.overlay_png(
                        images[k], reports[model].examples.maps[name][k], alpha=0.85, clip_percentile=98.0
                    )
                )
            canvas.paste(cell, (label + k * (CELL + 6), y))
    return render.png(np.asarray(canvas))


def main() -> None:
    torch.set_num_threads(2)
    register_generators()
    repository = ModelRepository(ROOT / "models", device=torch.device("cpu"))
    repository.load_all()
    honest_set = repository.dataset("shapes", "shapes-val", max_pixels=10**8)
    report = run(repository, "shapes", honest_set, tuple(Metric), 48)
    (IMAGES / "evaluation-report.png").write_bytes(report_png(report))
    print("\n".join(method.verdict for method in report.methods))

    patched = repository.dataset("shapes-shortcut", "shapes-val", max_pixels=10**8)
    localise = (Metric.POINTING_GAME, Metric.RELEVANCE_MASS, Metric.DELETION)
    reports = {
        model: run(repository, model, patched, localise, 48) for model in ("shapes", "shapes-shortcut")
    }
    (IMAGES / "evaluation-shortcut.png").write_bytes(comparison(reports, patched.images))
    print("\n| method | model | pointing: object | pointing: patch | mass: object | mass: patch |")
    print("|---|---|---|---|---|---|")
    for m in METHODS:
        for model, result in reports.items():
            scores = {s.region: s for s in next(x for x in result.methods if x.name == m.name).localisation}
            obj, patch = scores["object"], scores[PATCH.name]
            print(
                f"| {m.name} | `{model}` | {obj.pointing_hit_rate:.0%} | {patch.pointing_hit_rate:.0%} | "
                f"{obj.relevance_mass:.2f} | {patch.relevance_mass:.2f} |"
            )
    area = reports["shapes"].methods[0].localisation
    print("\narea fractions: " + ", ".join(f"{s.region} {s.area_fraction:.3f}" for s in area))
    shuffled = repository.dataset("shapes-shortcut", "shapes-val-random-patch", max_pixels=10**8)
    for model in ("shapes", "shapes-shortcut"):
        for name, images in (("patch = label", patched), ("random patch", shuffled)):
            correct = repository.get(model, "").logits(images.images).argmax(dim=1) == images.labels
            print(f"accuracy of {model} on {name}: {correct.float().mean():.1%}")


if __name__ == "__main__":
    main()
