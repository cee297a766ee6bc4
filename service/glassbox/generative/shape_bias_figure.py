"""The picture of a shape-bias job: a class × class grid of cue-conflict images (row = the class of the
shape, column = the class of the texture), each framed by the model's decision, with the class's own
image on the diagonal, labels, and the overall figures in a title line."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from glassbox.common.pictures import grid, rgb
from glassbox.generative.shape_bias import Decision, ShapeBiasReport
from glassbox.render import png

DECISION_COLOURS = {
    Decision.SHAPE: (31, 119, 180),  # blue
    Decision.TEXTURE: (255, 127, 14),  # orange
    Decision.OTHER: (150, 150, 150),  # grey
}
FRAME = 4
LABEL_WIDTH = 72
HEADER = 20
TITLE = 34
LEGEND = 20
GRID_SIDE = 768
"""The grid's target width in pixels: tiles are scaled to about GRID_SIDE / classes, within TILE_RANGE."""
TILE_RANGE = (40, 128)


def tile_side(classes: int, image_side: int) -> int:
    return max(TILE_RANGE[0], min(TILE_RANGE[1], GRID_SIDE // classes, max(image_side, TILE_RANGE[0])))


def _tile(image: torch.Tensor, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb(image)).resize((side, side), Image.Resampling.NEAREST))


def _framed(tile: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    out = tile.copy()
    out[:FRAME], out[-FRAME:], out[:, :FRAME], out[:, -FRAME:] = colour, colour, colour, colour
    return out


def grid_png(
    report: ShapeBiasReport,
    classes: Sequence[int],
    labels: Sequence[str],
    originals: torch.Tensor,
    title: str,
) -> bytes:
    """The grid as PNG.

    Args:
        report: the job's report (its first image of each pair is shown).
        classes: the classes of the rows and columns, in order.
        labels: the model's class labels.
        originals: one image [3, H, W] per class of `classes`, for the diagonal.
        title: the first line above the grid (model and set).
    """
    side = tile_side(len(classes), originals.shape[-1])
    position = {index: i for i, index in enumerate(classes)}
    first: dict[tuple[int, int], int] = {}
    for i, image in enumerate(report.images):
        first.setdefault((image.shape_class, image.texture_class), i)
    blank = np.full((side, side, 3), 255, dtype=np.uint8)
    tiles = [blank] * (len(classes) * len(classes))
    for row, original in enumerate(originals):
        tiles[row * len(classes) + row] = _tile(original, side)
    for (a, b), i in first.items():
        cell = position[a] * len(classes) + position[b]
        tiles[cell] = _framed(_tile(report.pictures[i], side), DECISION_COLOURS[report.images[i].decision])
    body = grid(tiles, len(classes))

    width = LABEL_WIDTH + body.shape[1]
    height = TITLE + HEADER + body.shape[0] + LEGEND
    canvas = Image.new("RGB", (max(width, 420), height), "white")
    canvas.paste(Image.fromarray(body), (LABEL_WIDTH, TITLE + HEADER))
    draw = ImageDraw.Draw(canvas)
    overall = report.overall
    draw.text((4, 2), title, fill="black")
    draw.text(
        (4, 16),
        f"shape bias {overall.shape_bias:.2f}: {overall.shape} shape, {overall.texture} texture, "
        f"{overall.other} other of {overall.images} ({report.construction.value} construction)",
        fill="black",
    )
    draw.text((4, TITLE + 4), "shape\\texture", fill="black")
    for i, index in enumerate(classes):
        draw.text((LABEL_WIDTH + i * (side + 1) + 2, TITLE + 4), labels[index][:12], fill="black")
        draw.text((4, TITLE + HEADER + i * (side + 1) + side // 2 - 6), labels[index][:11], fill="black")
    legend_y = height - LEGEND + 4
    x = 4
    for decision, colour in DECISION_COLOURS.items():
        draw.rectangle((x, legend_y, x + 10, legend_y + 10), fill=colour)
        draw.text((x + 14, legend_y - 1), decision.value, fill="black")
        x += 80
    draw.text((x, legend_y - 1), "diagonal: an image of the class", fill="black")
    return png(np.asarray(canvas))
