"""Pictures shared by the inspection calls and jobs: value maps and images tiled into grids, class
colours, frames and legends, all as 8-bit RGB arrays encoded with `render.png` (no matplotlib)."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from glassbox.render import Colormap, colour_positions

GAP_COLOUR = (200, 200, 200)
"""Light grey between the tiles of a grid."""

# Tableau 10 (matplotlib's tab10), then golden-angle hues for models with more classes.
_TAB10 = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def class_colour(index: int) -> tuple[int, int, int]:
    """A colour per class: Tableau 10 for the first ten, then hues 137.5° apart."""
    if index < len(_TAB10):
        return _TAB10[index]
    hue = (index * 0.381966) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.9)
    return round(r * 255), round(g * 255), round(b * 255)


def rgb(image: torch.Tensor) -> np.ndarray:
    """An image [3, H, W] in [0, 1] as uint8 [H, W, 3]."""
    array = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    return np.round(array * 255).astype(np.uint8)


def magnify(tile: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour magnification of [H, W, ...] by an integer factor."""
    return tile.repeat(factor, axis=0).repeat(factor, axis=1)


def grid(tiles: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Equal-sized RGB tiles [h, w, 3] row by row with 1-pixel grey gaps: one RGB array."""
    rows = math.ceil(len(tiles) / columns)
    h, w = tiles[0].shape[:2]
    canvas = np.empty((rows * (h + 1) - 1, columns * (w + 1) - 1, 3), dtype=np.uint8)
    canvas[:] = GAP_COLOUR
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = tile
    return canvas


def square_columns(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def magnification(side: int, minimum: int) -> int:
    """The integer factor that brings `side` to at least `minimum` pixels."""
    return max(1, math.ceil(minimum / max(side, 1)))


def activation_tiles(maps: torch.Tensor, minimum_side: int = 32) -> list[np.ndarray]:
    """Maps [K, H, W] coloured on one inferno scale from min(0, smallest) to the largest value."""
    values = maps.detach().float().cpu().numpy()
    low = min(0.0, float(values.min())) if values.size else 0.0
    span = float(values.max()) - low if values.size else 0.0
    positions = (values - low) / span if span > 0 else np.zeros_like(values)
    factor = magnification(max(values.shape[1:]), minimum_side)
    return [magnify(colour_positions(p, Colormap.INFERNO), factor) for p in positions]


def diverging_tiles(maps: torch.Tensor, factor: int) -> list[np.ndarray]:
    """Signed maps [K, H, W] on one diverging scale symmetric around 0 (white), ±max |value| at the ends."""
    values = maps.detach().float().cpu().numpy()
    scale = float(np.abs(values).max()) if values.size else 0.0
    positions = (values / scale + 1) / 2 if scale > 0 else np.full_like(values, 0.5)
    return [magnify(colour_positions(p, Colormap.DIVERGING), factor) for p in positions]


def framed(tile: np.ndarray, colour: tuple[int, int, int], width: int) -> np.ndarray:
    """The tile with a frame of `width` pixels drawn over its border."""
    out = tile.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


def outline(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """The image with a 1-pixel yellow box drawn around rows top..top+height-1, columns left..."""
    out = image.copy()
    bottom, right = top + height - 1, left + width - 1
    yellow = (255, 255, 0)
    out[top, left : right + 1] = yellow
    out[bottom, left : right + 1] = yellow
    out[top : bottom + 1, left] = yellow
    out[top : bottom + 1, right] = yellow
    return out


def legend(classes: Sequence[tuple[int, str]], width: int) -> np.ndarray:
    """A white strip with a colour swatch and the name of each (index, label), wrapped to `width`."""
    entry_width, line = 120, 16
    per_line = max(1, width // entry_width)
    lines = math.ceil(len(classes) / per_line)
    strip = Image.new("RGB", (width, lines * line + 4), "white")
    draw = ImageDraw.Draw(strip)
    for i, (index, label) in enumerate(classes):
        r, c = divmod(i, per_line)
        x, y = c * entry_width + 4, r * line + 4
        draw.rectangle((x, y, x + 10, y + 10), fill=class_colour(index))
        draw.text((x + 14, y - 1), label[:16], fill="black")
    return np.asarray(strip)


def activation_grid(maps: torch.Tensor) -> tuple[np.ndarray, int, int]:
    """Feature maps [K, H, W] as one near-square grid of `activation_tiles`: (RGB, rows, columns)."""
    tiles = activation_tiles(maps)
    columns = square_columns(len(tiles))
    return grid(tiles, columns), math.ceil(len(tiles) / columns), columns
