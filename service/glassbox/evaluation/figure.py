"""The report picture, drawn with PIL and numpy (no plotting library at run time): the deletion, insertion
and ROAD curves of every method beside the random reference, a grid of example maps (one row per method,
overlaid on the images with `render.overlay_png`), and the verdict lines."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from glassbox import render
from glassbox.evaluation.report import Curve, EvaluationReport, MethodReport

PALETTE = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))
REFERENCE_COLOUR = (150, 150, 150)
PANEL = (320, 220)
MARGIN = (44, 40, 12, 36)  # left, top, right, bottom of the plot area inside a panel
CELL = 112
GAP = 8
TEXT = (20, 20, 20)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _curve_panel(
    title: str, series: list[tuple[str, Curve, tuple[int, int, int]]], y_label: str
) -> Image.Image:
    """One panel: axes [0, 1] × [0, 1] and a polyline per curve, with the AUC in the legend."""
    panel = Image.new("RGB", PANEL, "white")
    draw = ImageDraw.Draw(panel)
    left, top, right, bottom = MARGIN
    width, height = PANEL[0] - left - right, PANEL[1] - top - bottom
    font = _font(11)
    draw.text((8, 4), title, fill=TEXT, font=_font(13))
    draw.rectangle((left, top, left + width, top + height), outline=(90, 90, 90))
    for tick in (0.0, 0.5, 1.0):
        x = left + tick * width
        y = top + (1 - tick) * height
        draw.line((x, top + height, x, top + height + 3), fill=(90, 90, 90))
        draw.text((x - 8, top + height + 5), f"{tick:g}", fill=TEXT, font=font)
        draw.line((left - 3, y, left, y), fill=(90, 90, 90))
        draw.text((left - 24, y - 6), f"{tick:g}", fill=TEXT, font=font)
    draw.text((left + width // 2 - 40, PANEL[1] - 14), "fraction of pixels", fill=TEXT, font=font)
    draw.text((4, top - 15), y_label, fill=TEXT, font=font)
    for _name, curve, colour in series:
        points = [(left + x * width, top + (1 - y) * height) for x, y in zip(curve.x, curve.y, strict=True)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
    labels = [f"{name} {curve.auc:.2f}" for name, curve, _ in series]
    text_width = max((font.getlength(label) for label in labels), default=0)
    legend_left = left + width - text_width - 26
    draw.rectangle(
        (legend_left - 2, top + 2, left + width - 2, top + 6 + 13 * len(labels)),
        fill="white",
        outline=(210, 210, 210),
    )
    for row, (label, (_, _, colour)) in enumerate(zip(labels, series, strict=True)):
        legend_y = top + 4 + 13 * row
        draw.line((legend_left, legend_y + 6, legend_left + 14, legend_y + 6), fill=colour, width=2)
        draw.text((legend_left + 18, legend_y), label, fill=TEXT, font=font)
    return panel


def _series(report: EvaluationReport, attribute: str) -> list[tuple[str, Curve, tuple[int, int, int]]]:
    rows: list[tuple[MethodReport, tuple[int, int, int]]] = [
        (method, PALETTE[i % len(PALETTE)]) for i, method in enumerate(report.methods)
    ]
    rows.append((report.random_reference, REFERENCE_COLOUR))
    return [
        (m.name, getattr(m, attribute), colour) for m, colour in rows if getattr(m, attribute) is not None
    ]


def _cell(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB").resize((CELL, CELL), Image.Resampling.NEAREST)


def report_png(report: EvaluationReport) -> bytes:
    """The report picture as PNG bytes."""
    panels = [
        _curve_panel(title, _series(report, attribute), label)
        for title, attribute, label in (
            ("Deletion (lower AUC is better)", "deletion", "p(target)"),
            ("Insertion (higher AUC is better)", "insertion", "p(target)"),
            ("ROAD, most relevant first", "road", "accuracy"),
        )
        if _series(report, attribute)
    ]
    examples = report.examples
    shown = examples.images.shape[0]
    font = _font(12)
    label_width = 12 + int(max((font.getlength(name) for name in ("image", *examples.maps)), default=0))
    grid_rows = [("image", None)] + [(name, maps) for name, maps in examples.maps.items()] if shown else []
    grid_width = label_width + shown * (CELL + GAP)
    verdicts = [method.verdict for method in report.methods]
    verdict_width = 12 + int(max((font.getlength(line) for line in verdicts), default=0))
    width = max(len(panels) * PANEL[0], grid_width, verdict_width, 600)
    height = (PANEL[1] if panels else 0) + len(grid_rows) * (CELL + GAP) + 16 * len(verdicts) + 40
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, panel in enumerate(panels):
        canvas.paste(panel, (i * PANEL[0], 0))
    y = (PANEL[1] if panels else 0) + GAP
    for name, maps in grid_rows:
        draw.text((6, y + CELL // 2 - 7), name, fill=TEXT, font=font)
        for k in range(shown):
            image = examples.images[k]
            if maps is None:
                array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                tile = _cell(render.png(array))
            else:
                tile = _cell(render.overlay_png(image, maps[k]))
            canvas.paste(tile, (label_width + k * (CELL + GAP), y))
        y += CELL + GAP
    y += 8
    for line in verdicts:
        draw.text((6, y), line, fill=TEXT, font=font)
        y += 16
    return render.png(np.asarray(canvas))
