"""Attribution maps → PNG heatmaps and overlays, with built-in colour tables (no matplotlib at run time).

A map is scaled by a high percentile of |value| (default 99.5: a few extreme gradients would otherwise
leave the rest of the picture black), clipped, and coloured: signed maps symmetrically around zero
(zero is the middle of the colour scale), non-negative maps from zero. Overlays blend the heatmap over
the image with an opacity proportional to each pixel's normalised |value|, so unimportant regions show
the image itself.
"""

from __future__ import annotations

import io
from enum import StrEnum

import numpy as np
import torch
from PIL import Image

DEFAULT_CLIP_PERCENTILE = 99.5
DEFAULT_OVERLAY_ALPHA = 0.6


class Colormap(StrEnum):
    VIRIDIS = "viridis"
    INFERNO = "inferno"
    JET = "jet"
    GRAY = "gray"
    DIVERGING = "diverging"


# 17 evenly spaced anchors of matplotlib's viridis, inferno and RdBu_r (linear interpolation between
# them is within 8/255 of the originals).
_ANCHORS: dict[Colormap, list[tuple[int, int, int]]] = {
    Colormap.VIRIDIS: [
        (68, 1, 84),
        (72, 24, 106),
        (71, 45, 123),
        (66, 64, 134),
        (59, 82, 139),
        (51, 99, 141),
        (44, 114, 142),
        (38, 130, 142),
        (33, 145, 140),
        (31, 160, 136),
        (40, 174, 128),
        (63, 188, 115),
        (94, 201, 98),
        (132, 212, 75),
        (173, 220, 48),
        (216, 226, 25),
        (253, 231, 37),
    ],
    Colormap.INFERNO: [
        (0, 0, 4),
        (11, 7, 36),
        (33, 12, 74),
        (61, 9, 101),
        (87, 16, 110),
        (113, 25, 110),
        (138, 34, 106),
        (163, 44, 97),
        (188, 55, 84),
        (210, 70, 68),
        (228, 90, 49),
        (241, 115, 29),
        (249, 142, 9),
        (252, 172, 17),
        (249, 203, 53),
        (242, 234, 105),
        (252, 255, 164),
    ],
    Colormap.DIVERGING: [
        (5, 48, 97),
        (23, 82, 144),
        (42, 113, 178),
        (63, 142, 192),
        (107, 172, 209),
        (155, 201, 224),
        (194, 221, 236),
        (224, 236, 243),
        (247, 246, 246),
        (251, 229, 216),
        (251, 204, 180),
        (245, 170, 137),
        (228, 128, 102),
        (208, 85, 72),
        (186, 40, 50),
        (147, 14, 38),
        (103, 0, 31),
    ],
    Colormap.GRAY: [(0, 0, 0), (255, 255, 255)],
}


def _table(colormap: Colormap) -> np.ndarray:
    """A 256 × 3 uint8 colour table."""
    positions = np.linspace(0.0, 1.0, 256)
    if colormap is Colormap.JET:
        rgb = (
            np.stack([np.clip(1.5 - np.abs(4 * positions - shift), 0, 1) for shift in (3, 2, 1)], axis=1)
            * 255
        )
    else:
        anchors = np.asarray(_ANCHORS[colormap], dtype=np.float64)
        xs = np.linspace(0.0, 1.0, len(anchors))
        rgb = np.stack([np.interp(positions, xs, anchors[:, c]) for c in range(3)], axis=1)
    return np.round(rgb).astype(np.uint8)


_TABLES = {colormap: _table(colormap) for colormap in Colormap}


def colour_positions(positions: np.ndarray, colormap: Colormap) -> np.ndarray:
    """RGB uint8 [..., 3] of positions in [0, 1] on a colour scale (the caller chose the scaling)."""
    return _TABLES[colormap][np.round(np.clip(positions, 0.0, 1.0) * 255).astype(np.intp)]


def normalise(
    values: torch.Tensor, clip_percentile: float = DEFAULT_CLIP_PERCENTILE
) -> tuple[np.ndarray, bool]:
    """A [H, W] map scaled to [-1, 1] (signed) or [0, 1] (non-negative) by the |value| percentile."""
    array = values.detach().float().cpu().numpy()
    signed = bool((array < 0).any())
    scale = float(np.percentile(np.abs(array), clip_percentile)) if array.size else 0.0
    if scale <= 0 or not np.isfinite(scale):
        scale = float(np.abs(array).max()) if array.size else 0.0
    if scale <= 0 or not np.isfinite(scale):
        return np.zeros_like(array), signed
    return np.clip(array / scale, -1.0 if signed else 0.0, 1.0), signed


def colorize(
    values: torch.Tensor, colormap: Colormap | None = None, clip_percentile: float = DEFAULT_CLIP_PERCENTILE
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3] heatmap, normalised |value| [H, W] in [0, 1]) of a [H, W] map."""
    scaled, signed = normalise(values, clip_percentile)
    colormap = colormap or (Colormap.DIVERGING if signed else Colormap.INFERNO)
    position = (scaled + 1.0) / 2.0 if signed else scaled
    return _TABLES[colormap][np.round(position * 255).astype(np.intp)], np.abs(scaled)


def png(rgb: np.ndarray) -> bytes:
    """Encode an RGB uint8 [H, W, 3] array as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def heatmap_png(
    values: torch.Tensor, colormap: Colormap | None = None, clip_percentile: float = DEFAULT_CLIP_PERCENTILE
) -> bytes:
    """PNG heatmap of a [H, W] map."""
    return png(colorize(values, colormap, clip_percentile)[0])


def overlay_png(
    image: torch.Tensor,
    values: torch.Tensor,
    colormap: Colormap | None = None,
    alpha: float = DEFAULT_OVERLAY_ALPHA,
    clip_percentile: float = DEFAULT_CLIP_PERCENTILE,
) -> bytes:
    """PNG of the heatmap of a [H, W] map over an image [3, H, W] in [0, 1], opacity alpha · |value|."""
    heat, magnitude = colorize(values, colormap, clip_percentile)
    base = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0
    opacity = (alpha * magnitude)[..., None]
    blended = base * (1.0 - opacity) + heat.astype(np.float64) * opacity
    return png(np.round(blended).astype(np.uint8))
