"""The change report of a version pair: both versions' maps of the reference images for the same targets
(the labels, or the newer version's predictions), each image's similarity (`similarity`), and the
images whose maps changed most (lowest Spearman first), drawn as the image, the older version's map
and the newer version's map side by side."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from glassbox import render
from glassbox.backends.base import Model
from glassbox.config import Settings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import CancellationToken
from glassbox.evaluation.evaluate import logits_of
from glassbox.evaluation.explain import explain
from glassbox.methods.registry import method_class
from glassbox.models.datasets import LabelledImages
from glassbox.monitoring.checks import method_config
from glassbox.monitoring.similarity import map_similarity, prediction_agreement
from glassbox.serving import Estimate
from glassbox.serving.execution import SCHEDULED

CELL = 128
GAP = 6
TEXT_WIDTH = 300
TEXT = (20, 20, 20)


@dataclass(frozen=True)
class ImageChange:
    index: int
    name: str
    target: str
    prediction_before: str
    prediction_after: str
    spearman: float
    ssim: float
    top_k_overlap: float
    overlays_png: bytes


@dataclass(frozen=True)
class ChangeReport:
    model: str
    version: str
    baseline_version: str
    method: str
    reference_set: str
    images: int
    spearman: float
    ssim: float
    top_k_overlap: float
    prediction_agreement: float
    changes: tuple[ImageChange, ...]
    report_png: bytes
    budget_forward_passes: int
    forward_passes: int


def plan_changes(after: Model, before: Model, method: str, count: int, settings: Settings) -> Estimate:
    """Both versions' predictions and maps: the forward-pass budget (forward + backward rows)."""
    forward, backward = 0, 0
    cls = method_class(method)
    for model in (after, before):
        call = CallContext(model, CancellationToken(), settings.attribution, compute=SCHEDULED)
        rows = cls(model, cls.Params(), call, field="method").planned_rows(count, 1)
        forward, backward = forward + count + rows[0], backward + rows[1]
    return Estimate(forward_rows=forward, backward_rows=backward)


def _cell(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB").resize((CELL, CELL), Image.Resampling.NEAREST)


def _image_png(image: torch.Tensor) -> bytes:
    return render.png((image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def side_by_side(image: torch.Tensor, before: torch.Tensor, after: torch.Tensor) -> Image.Image:
    """The image, `before`'s map over it, `after`'s map over it, in one row."""
    row = Image.new("RGB", (3 * CELL + 2 * GAP, CELL), "white")
    for k, png in enumerate(
        (_image_png(image), render.overlay_png(image, before), render.overlay_png(image, after))
    ):
        row.paste(_cell(png), (k * (CELL + GAP), 0))
    return row


def _picture(report_rows: list[tuple[Image.Image, list[str]]], title: str) -> bytes:
    font = ImageFont.load_default(size=12)
    width = 3 * CELL + 2 * GAP + TEXT_WIDTH
    height = 28 + len(report_rows) * (CELL + GAP)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 6), title, fill=TEXT, font=font)
    y = 28
    for row, lines in report_rows:
        canvas.paste(row, (0, y))
        for k, line in enumerate(lines):
            draw.text((3 * CELL + 2 * GAP + 8, y + 4 + 16 * k), line, fill=TEXT, font=font)
        y += CELL + GAP
    return render.png(np.asarray(canvas))


def compare_versions(
    after: Model,
    before: Model,
    method: str,
    images: LabelledImages,
    token: CancellationToken,
    settings: Settings,
    *,
    reference_set: str,
    top: int,
    top_k_percent: float,
) -> ChangeReport:
    """The change report of `before` → `after` on `images` (see the module doc)."""
    budget = plan_changes(after, before, method, len(images), settings)
    pixels, labels = images.images, after.labels
    calls = [CallContext(model, token, settings.attribution, compute=SCHEDULED) for model in (after, before)]
    logits_after, logits_before = (logits_of(call, pixels) for call in calls)
    targets = images.labels if images.labels is not None else logits_after.argmax(dim=1)
    maps_after = explain(after, method_config(method), pixels, targets, token, settings)
    maps_before = explain(before, method_config(method), pixels, targets, token, settings)
    per_image = map_similarity(maps_before.values, maps_after.values, top_k_percent)
    order = torch.argsort(per_image.spearman, stable=True)[:top].tolist()
    changes, rows = [], []
    for index in order:
        row = side_by_side(pixels[index], maps_before.values[index], maps_after.values[index])
        buffer = io.BytesIO()
        row.save(buffer, format="PNG")
        change = ImageChange(
            index,
            images.names[index],
            labels[int(targets[index])],
            labels[int(logits_before[index].argmax())],
            labels[int(logits_after[index].argmax())],
            float(per_image.spearman[index]),
            float(per_image.ssim[index]),
            float(per_image.top_k_overlap[index]),
            buffer.getvalue(),
        )
        changes.append(change)
        rows.append(
            (
                row,
                [
                    f"#{index} {change.name}  target {change.target}",
                    f"predicted {change.prediction_before} -> {change.prediction_after}",
                    f"Spearman {change.spearman:.3f}  SSIM {change.ssim:.3f}",
                    f"top-{top_k_percent:g}% overlap {change.top_k_overlap:.3f}",
                ],
            )
        )
    title = (
        f"{after.name}: {method} maps of version {before.version} (middle) and {after.version} (right), "
        f"mean Spearman {float(per_image.spearman.mean()):.3f}"
    )
    forward = (
        sum(call.counter.forward for call in calls) + maps_after.forward_passes + maps_before.forward_passes
    )
    return ChangeReport(
        model=after.name,
        version=after.version,
        baseline_version=before.version,
        method=method,
        reference_set=reference_set,
        images=len(images),
        spearman=float(per_image.spearman.mean()),
        ssim=float(per_image.ssim.mean()),
        top_k_overlap=float(per_image.top_k_overlap.mean()),
        prediction_agreement=prediction_agreement(logits_before, logits_after),
        changes=tuple(changes),
        report_png=_picture(rows, title),
        budget_forward_passes=budget.forward_rows + budget.backward_rows,
        forward_passes=forward,
    )
