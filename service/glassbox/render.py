"""Attribution maps → PNG heatmaps and overlays, with built-in colour tables (no matplotlib at run time).

A map is scaled by a high percentile of |value| (default 99, as Captum's `visualize_image_attr`: a few
extreme gradients would otherwise leave the rest of the picture dark), clipped, and coloured: signed
maps symmetrically around zero (zero is the middle of the colour scale), non-negative maps from zero.
Overlays paint the map over a darkened grey copy of the image with an opacity that grows with
sqrt(|value|), so the map shows on any background and unimportant regions show the image. On request
a picture carries a colour bar with its scale and the method's name (`with_colour_bar`).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

DEFAULT_CLIP_PERCENTILE = 99.0
DEFAULT_OVERLAY_ALPHA = 0.85
LUMA = (0.299, 0.587, 0.114)
BACKGROUND_FLOOR = 0.1  # the overlay's grey background spans [0.1, 0.55]: dark enough for any colour
BACKGROUND_RANGE = 0.45
FIGURE_MIN_WIDTH = 256
FONT_SIZE = 12
BAR_HEIGHT = 10
MARGIN = 6


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


@dataclass(frozen=True)
class ScaledMap:
    """A [H, W] map scaled for a picture: `values` in [-1, 1] (signed) or [0, 1], and the |value| that
    maps to the end of the colour scale (`scale`; larger values saturate)."""

    values: np.ndarray
    signed: bool
    scale: float


def scale_map(values: torch.Tensor, clip_percentile: float = DEFAULT_CLIP_PERCENTILE) -> ScaledMap:
    """Scale a [H, W] map by the `clip_percentile` percentile of |value| (Captum's
    `visualize_image_attr` does the same), so that a few extreme gradients do not leave the rest dark."""
    array = values.detach().float().cpu().numpy()
    signed = bool((array < 0).any())
    scale = float(np.percentile(np.abs(array), clip_percentile)) if array.size else 0.0
    if scale <= 0 or not np.isfinite(scale):
        scale = float(np.abs(array).max()) if array.size else 0.0
    if scale <= 0 or not np.isfinite(scale):
        return ScaledMap(np.zeros_like(array), signed, 0.0)
    return ScaledMap(np.clip(array / scale, -1.0 if signed else 0.0, 1.0), signed, scale)


def normalise(
    values: torch.Tensor, clip_percentile: float = DEFAULT_CLIP_PERCENTILE
) -> tuple[np.ndarray, bool]:
    """A [H, W] map scaled to [-1, 1] (signed) or [0, 1] (non-negative) by the |value| percentile."""
    scaled = scale_map(values, clip_percentile)
    return scaled.values, scaled.signed


def default_colormap(signed: bool) -> Colormap:
    return Colormap.DIVERGING if signed else Colormap.INFERNO


def colorize(
    values: torch.Tensor, colormap: Colormap | None = None, clip_percentile: float = DEFAULT_CLIP_PERCENTILE
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3] heatmap, normalised |value| [H, W] in [0, 1]) of a [H, W] map."""
    scaled = scale_map(values, clip_percentile)
    return _colour(scaled, colormap or default_colormap(scaled.signed)), np.abs(scaled.values)


def _colour(scaled: ScaledMap, colormap: Colormap) -> np.ndarray:
    position = (scaled.values + 1.0) / 2.0 if scaled.signed else scaled.values
    return _TABLES[colormap][np.round(position * 255).astype(np.intp)]


def png(rgb: np.ndarray) -> bytes:
    """Encode an RGB uint8 [H, W, 3] array as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def encode_png(images: torch.Tensor) -> bytes:
    """An 8-bit RGB PNG of an image [3, H, W] or of a batch [B, 3, H, W] side by side; values in [0, 1]
    (generated images: results and progress previews)."""
    batch = images.detach().float().cpu().clamp(0.0, 1.0)
    if batch.dim() == 3:
        batch = batch[None]
    row = torch.cat(list(batch), dim=2)  # [3, H, B * W]
    return png((row.permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy())


def heatmap_png(
    values: torch.Tensor,
    colormap: Colormap | None = None,
    clip_percentile: float = DEFAULT_CLIP_PERCENTILE,
    caption: str | None = None,
) -> bytes:
    """PNG heatmap of a [H, W] map; with a `caption` (the method's name), a colour bar and its scale
    below it."""
    scaled = scale_map(values, clip_percentile)
    colormap = colormap or default_colormap(scaled.signed)
    picture = _colour(scaled, colormap)
    return png(picture if caption is None else with_colour_bar(picture, scaled, colormap, caption))


def overlay_rgb(
    image: torch.Tensor,
    scaled: ScaledMap,
    colormap: Colormap,
    alpha: float = DEFAULT_OVERLAY_ALPHA,
) -> np.ndarray:
    """The map painted over a darkened grey copy of the image [3, H, W] in [0, 1].

    The grey, darkened background (as Captum's `blended_heat_map` uses a grey image) keeps the image's
    shapes readable while no colour of the image can hide the map's colours (a blue map on a light
    blue object). Each pixel's opacity is `alpha` · sqrt(|value|): faint gradients still show, and where
    the map is zero the background shows through."""
    pixels = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    grey = pixels @ np.asarray(LUMA, dtype=np.float32)
    base = np.repeat((BACKGROUND_FLOOR + BACKGROUND_RANGE * grey)[..., None] * 255.0, 3, axis=2)
    opacity = (alpha * np.sqrt(np.abs(scaled.values)))[..., None]
    blended = base * (1.0 - opacity) + _colour(scaled, colormap).astype(np.float64) * opacity
    return np.round(blended).astype(np.uint8)


def overlay_png(
    image: torch.Tensor,
    values: torch.Tensor,
    colormap: Colormap | None = None,
    alpha: float = DEFAULT_OVERLAY_ALPHA,
    clip_percentile: float = DEFAULT_CLIP_PERCENTILE,
    caption: str | None = None,
) -> bytes:
    """PNG of a [H, W] map over an image [3, H, W] in [0, 1] (`overlay_rgb`); with a `caption`, a colour
    bar and its scale below it."""
    scaled = scale_map(values, clip_percentile)
    colormap = colormap or default_colormap(scaled.signed)
    picture = overlay_rgb(image, scaled, colormap, alpha)
    return png(picture if caption is None else with_colour_bar(picture, scaled, colormap, caption))


def with_colour_bar(picture: np.ndarray, scaled: ScaledMap, colormap: Colormap, caption: str) -> np.ndarray:
    """The picture (enlarged by whole pixels to at least `FIGURE_MIN_WIDTH` wide) above a strip with the
    caption, the colour scale and its end values (the clip percentile's |value|: beyond it, colours
    saturate)."""
    width = picture.shape[1]
    factor = max(1, -(-FIGURE_MIN_WIDTH // width))
    enlarged = picture.repeat(factor, axis=0).repeat(factor, axis=1)
    figure_width = width * factor
    font = _font()
    line = FONT_SIZE + 4
    strip = Image.new("RGB", (figure_width, 3 * line + BAR_HEIGHT), "white")
    draw = ImageDraw.Draw(strip)
    draw.text((MARGIN, 2), _fit(draw, caption, font, figure_width - 2 * MARGIN), fill="black", font=font)
    positions = np.linspace(-1.0 if scaled.signed else 0.0, 1.0, figure_width - 2 * MARGIN)
    bar_scaled = ScaledMap(np.repeat(positions[None, :], BAR_HEIGHT, axis=0), scaled.signed, scaled.scale)
    strip.paste(Image.fromarray(_colour(bar_scaled, colormap)), (MARGIN, line + 2))
    labels = (
        [f"-{scaled.scale:.3g}", "0", f"+{scaled.scale:.3g}"]
        if scaled.signed
        else ["0", f"{scaled.scale:.3g}"]
    )
    anchors = ["la", "ma", "ra"] if scaled.signed else ["la", "ra"]
    xs = (
        [MARGIN, figure_width // 2, figure_width - MARGIN]
        if scaled.signed
        else [MARGIN, figure_width - MARGIN]
    )
    for text, anchor, x in zip(labels, anchors, xs, strict=True):
        draw.text((x, line + BAR_HEIGHT + 4), text, fill="black", font=font, anchor=anchor)
    return np.concatenate([enlarged, np.asarray(strip)], axis=0)


@functools.cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int
) -> str:
    """`text`, shortened with an ellipsis to fit `width` pixels."""
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text
