"""The widened shapes renderer: `shapes.generate` for every style but the classic one (`shape_styles`).

Same classes, same unit shapes and the same background textures as the classic renderer, plus what a
`Style` adds: stretch, free rotation, outlines, shapes running off the border, plain and radial
backgrounds, stronger noise and lower contrast. Edges are anti-aliased (each pixel averages 2×2 point
tests), and the mask marks the pixels the object covers at least half of.
"""

from __future__ import annotations

import math

import numpy as np

from glassbox.demo.shape_backgrounds import BACKGROUND_PAINTERS
from glassbox.demo.shape_styles import Style, draw
from glassbox.demo.shapes import contrasting_colours, inside_unit_shape

_CHUNK = 1024  # images rendered at once, bounding memory whatever n is
_HULL_POINTS = 48  # points whose bounding box is the unit shape's (exact for polygons, 0.2% for circles)
_SUBPIXEL_OFFSETS = (-0.25, 0.25)  # the 2×2 point tests per pixel, in pixels from its centre
_MIN_OUTLINE_PIXELS = 1.5  # thinner outlines are widened to this, so they never break up
_OUTLINED_CLASSES = (1, 2, 3, 4)  # square, triangle, cross, star: an outline keeps the class
_STAR_TIP_ANGLE = math.pi / 5


def render_styled(
    rng: np.random.Generator, labels: np.ndarray, size: int, style: Style
) -> tuple[np.ndarray, np.ndarray]:
    """Images float32 [N, 3, size, size] in [0, 1] and masks bool [N, size, size] of the `labels` shapes."""
    n = len(labels)
    geometry = _sample_geometry(rng, labels, size, style)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    for start in range(0, n, _CHUNK):
        part = slice(start, min(start + _CHUNK, n))
        coverage = _coverage(labels[part], {k: v[part] for k, v in geometry.items()}, size)
        masks[part] = coverage >= 0.5
        images[part] = _paint(rng, coverage, size, style)
    return images, masks


def _sample_geometry(
    rng: np.random.Generator, labels: np.ndarray, size: int, style: Style
) -> dict[str, np.ndarray]:
    """Per image: centre (pixels), rotation, scale (pixels per unit), stretch, shape parameter, outline."""
    n = len(labels)
    theta = rng.uniform(0.0, 2 * math.pi, n)
    tilt = draw(rng, style.cross_tilts, n) * rng.choice([-1.0, 1.0], n)
    theta = np.where(labels == 3, tilt, theta)
    param = np.select(
        [labels == 3, labels == 4, labels == 5],
        [draw(rng, style.cross_arms, n), draw(rng, style.star_inners, n), draw(rng, style.ring_inners, n)],
        0.0,
    )
    stretch = np.exp(draw(rng, style.stretches, n) * rng.choice([-1.0, 1.0], n))
    along_u, along_v = np.sqrt(stretch), 1 / np.sqrt(stretch)  # area-preserving stretch of the unit shape

    hull = _hull_points(labels, param)
    xs0, ys0 = hull[..., 0] * along_u[:, None], hull[..., 1] * along_v[:, None]
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    xs, ys = xs0 * cos - ys0 * sin, xs0 * sin + ys0 * cos
    lo_x, hi_x, lo_y, hi_y = xs.min(1), xs.max(1), ys.min(1), ys.max(1)
    scale = draw(rng, style.sizes, n) * size / np.maximum(hi_x - lo_x, hi_y - lo_y)
    width, height = (hi_x - lo_x) * scale, (hi_y - lo_y) * scale
    cut = np.where(rng.uniform(0, 1, n) < style.border_cut, draw(rng, style.cuts, n), 0.0)
    left = -cut * width + rng.uniform(0, 1, n) * (size - width + 2 * cut * width)
    top = -cut * height + rng.uniform(0, 1, n) * (size - height + 2 * cut * height)

    outlined = (rng.uniform(0, 1, n) < style.outline) & np.isin(labels, _OUTLINED_CLASSES)
    inradius = _inradius(labels, param)
    outline_width = np.maximum(draw(rng, style.outline_widths, n), _MIN_OUTLINE_PIXELS / (inradius * scale))
    return {
        "cx": left - lo_x * scale,
        "cy": top - lo_y * scale,
        "theta": theta,
        "scale": scale,
        "along_u": along_u,
        "along_v": along_v,
        "param": param,
        "outline": np.where(outlined, np.minimum(outline_width, 0.8), 0.0),
    }


def _hull_points(labels: np.ndarray, param: np.ndarray) -> np.ndarray:
    """Points [N, _HULL_POINTS, 2] whose bounding box, under any rotation, is the unit shape's."""
    k = np.arange(_HULL_POINTS)
    points = np.zeros((len(labels), _HULL_POINTS, 2))
    for cls, tips, offset in ((1, 4, math.pi / 4), (2, 3, math.pi / 2), (4, 5, math.pi / 2)):
        a = offset + 2 * math.pi * (k % tips) / tips  # square, triangle, star tips
        points[labels == cls] = np.stack([np.cos(a), np.sin(a)], -1)
    a = 2 * math.pi * k / _HULL_POINTS  # circle and ring
    points[(labels == 0) | (labels == 5)] = np.stack([np.cos(a), np.sin(a)], -1)
    cross = labels == 3  # the twelve corners' extremes are the eight arm-end corners
    w = param[cross, None]
    corner = k % 8
    sign_a = np.where(corner % 2 == 0, 1.0, -1.0)
    sign_b = np.where(corner % 4 < 2, 1.0, -1.0)
    long_u = corner < 4
    points[cross, :, 0] = np.where(long_u, sign_b, sign_a * w)
    points[cross, :, 1] = np.where(long_u, sign_a * w, sign_b)
    return points


def _inradius(labels: np.ndarray, param: np.ndarray) -> np.ndarray:
    """Distance from a unit shape's centre to its edges (the cross: its arm half-width); 1 for discs."""
    star_edge = (param * math.cos(_STAR_TIP_ANGLE) - 1, param * math.sin(_STAR_TIP_ANGLE))
    star = param * math.sin(_STAR_TIP_ANGLE) / np.maximum(np.hypot(*star_edge), 1e-9)
    return np.select(
        [labels == 1, labels == 2, labels == 3, labels == 4], [math.sqrt(0.5), 0.5, param, star], 1.0
    )


def _coverage(labels: np.ndarray, geo: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Fraction [N, H, W] of each pixel's 2×2 point tests that fall on the object."""

    def col(key: str) -> np.ndarray:
        return geo[key].astype(np.float32)[:, None, None]

    cos, sin, scale = np.cos(col("theta")), np.sin(col("theta")), col("scale")
    param, outline = col("param"), col("outline")
    # the outline's hole: the shape shrunk about its centre, which moves every edge of these regular
    # shapes in by the same width; the cross's hole keeps its arm length minus the width of its sides
    is_cross = labels[:, None, None] == 3
    width = np.where(is_cross, outline * param, outline)
    shrink = 1 - width
    inner_param = np.where(is_cross, (param - width) / shrink, param)
    coverage = np.zeros((len(labels), size, size), dtype=np.float32)
    for oy in _SUBPIXEL_OFFSETS:
        for ox in _SUBPIXEL_OFFSETS:
            dx = np.arange(size, dtype=np.float32)[None, None, :] + 0.5 + ox - col("cx")
            dy = np.arange(size, dtype=np.float32)[None, :, None] + 0.5 + oy - col("cy")
            u = (dx * cos + dy * sin) / (scale * col("along_u"))
            v = (dy * cos - dx * sin) / (scale * col("along_v"))
            on = inside_unit_shape(labels, u, v, np.broadcast_to(param, u.shape))
            hole = inside_unit_shape(labels, u / shrink, v / shrink, np.broadcast_to(inner_param, u.shape))
            coverage += on & ~(hole & (outline > 0))
    return coverage / len(_SUBPIXEL_OFFSETS) ** 2


def _paint(rng: np.random.Generator, coverage: np.ndarray, size: int, style: Style) -> np.ndarray:
    """Background of the style's kinds, a flat object colour blended by coverage, and pixel noise."""
    n = coverage.shape[0]
    spread = style.background_spread
    c1 = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    c2 = np.clip(c1 + rng.uniform(-spread, spread, (n, 3)), 0, 1).astype(np.float32)
    kind = rng.integers(0, len(style.backgrounds), n)
    t = np.zeros((n, size, size), dtype=np.float32)
    for index, name in enumerate(style.backgrounds):
        t[kind == index] = BACKGROUND_PAINTERS[name](rng, int((kind == index).sum()), size)
    np.clip(t, 0, 1, out=t)
    background = c1[:, :, None, None] + t[:, None] * (c2 - c1)[:, :, None, None]
    obj = contrasting_colours(rng, c1, c2, style.min_contrast)[:, :, None, None]
    alpha = coverage[:, None]
    noise = rng.standard_normal((n, 3, size, size), dtype=np.float32)
    noise *= draw(rng, style.noise, n).astype(np.float32)[:, None, None, None]
    return np.clip(background * (1 - alpha) + obj * alpha + noise, 0, 1, dtype=np.float32)
