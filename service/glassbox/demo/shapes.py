"""The procedurally generated "shapes" dataset behind the demo models.

Each image shows one filled shape (circle, square, triangle, cross, star or ring) on a textured
background, with its exact ground-truth mask, so explanation methods can be scored against where the
object really is. The "shortcut" variant adds a small class-coloured patch in a fixed corner: a model
trained with `shortcut="train"` can learn the patch instead of the shape, and `shortcut="test"` data
(patch colour independent of the label) exposes it, which is what the attribution demos are meant to show.

Everything is rendered with vectorised point-in-shape tests on a pixel grid (no drawing library),
driven by a seeded `numpy.random.Generator`, so a (n, seed, size, shortcut, style) tuple always yields
the same tensors. This module renders the classic style, the default; `shape_styles` describes the
widened training style and the held-out variant, which `styled_shapes` renders (outlines, stretch, shapes
cut by the border, anti-aliased edges).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from glassbox.demo.shape_backgrounds import BACKGROUND_PAINTERS
from glassbox.demo.shape_styles import CLASSIC, Style

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star", "ring")
"""Class names, in label-index order."""

SIZE_RANGE: tuple[float, float] = CLASSIC.sizes[0]
"""Bounds of the object's larger bounding-box side (in pixels), as a fraction of the image side."""

PATCH_CORNER: str = "top-left"
"""Where the shortcut patch sits: rows and columns [0, PATCH_SIZE) of the image."""

PATCH_SIZE: int = 6
"""Side of the square shortcut patch, in pixels."""

PATCH_COLOURS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0),  # circle: red
    (0.0, 1.0, 0.0),  # square: green
    (0.0, 0.0, 1.0),  # triangle: blue
    (1.0, 1.0, 0.0),  # cross: yellow
    (1.0, 0.0, 1.0),  # star: magenta
    (0.0, 1.0, 1.0),  # ring: cyan
)
"""RGB colour (in [0, 1]) of the shortcut patch for each class, in `CLASSES` order."""

PATCH_COLOUR_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
"""Human-readable names of `PATCH_COLOURS`, for model cards."""

BACKGROUNDS: tuple[str, ...] = CLASSIC.backgrounds
"""Background kinds of the classic style, drawn uniformly per image."""

MIN_CONTRAST: float = CLASSIC.min_contrast
"""Minimum RGB (Euclidean) distance between the object colour and every background colour before noise."""

Shortcut = Literal["none", "train", "test"]

_CHUNK = 1024  # images rendered at once: bounds memory to a few hundred MB whatever n is
_COLOUR_CANDIDATES = 32  # object colours tried per image to find one with the style's min contrast
_STAR_TIP_ANGLE = math.pi / 5  # half the angle between two star tips


@dataclass(frozen=True)
class ShapesBatch:
    """A generated batch: images, labels (indices into `CLASSES`) and object masks."""

    images: torch.Tensor  # float32 [N, 3, H, W] in [0, 1]
    labels: torch.Tensor  # int64 [N]
    masks: torch.Tensor  # bool [N, H, W], True on the object

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def generate(
    n: int, seed: int, *, size: int = 64, shortcut: Shortcut = "none", style: Style = CLASSIC
) -> ShapesBatch:
    """Generate `n` shapes images of `size`×`size`, deterministically from `seed`.

    Labels are balanced (each class appears ⌊n/6⌋ or ⌈n/6⌉ times) and shuffled. With
    `shortcut="train"` the corner patch colour is the label's `PATCH_COLOURS` entry; with
    `shortcut="test"` it is one of the six colours drawn independently of the label. In both shortcut
    modes the object is placed clear of the patch, so the mask stays exact; for a given seed the
    "train" and "test" variants show the same objects on the same backgrounds and differ only in the patch.
    `style` (`shape_styles`: `CLASSIC`, `TRAINING`, `VARIANT`) sets what is drawn; the shortcut patch
    exists in the classic style only.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if size < 16:
        raise ValueError(f"size must be at least 16, got {size}")
    if shortcut not in ("none", "train", "test"):
        raise ValueError(f"shortcut must be 'none', 'train' or 'test', got {shortcut!r}")
    if shortcut != "none" and style != CLASSIC:
        raise ValueError(f"the shortcut patch exists in the classic style only, not in {style.name!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    if style != CLASSIC:
        from glassbox.demo.styled_shapes import render_styled  # deferred: it builds on this module

        images, masks = render_styled(rng, labels, size, style)
        return ShapesBatch(
            torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(masks)
        )
    geometry = _sample_geometry(rng, labels, size, avoid_patch=shortcut != "none")
    random_patch = rng.integers(0, len(CLASSES), n)  # drawn in every mode so the images stay aligned
    patch = {"none": None, "train": labels, "test": random_patch}[shortcut]
    palette = np.asarray(PATCH_COLOURS, dtype=np.float32)

    images = np.empty((n, 3, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    for start in range(0, n, _CHUNK):
        part = slice(start, min(start + _CHUNK, n))
        masks[part] = _render_masks(labels[part], {k: v[part] for k, v in geometry.items()}, size)
        images[part] = _render_images(rng, masks[part], size)
        if patch is not None:
            images[part, :, :PATCH_SIZE, :PATCH_SIZE] = palette[patch[part]][:, :, None, None]
    return ShapesBatch(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels.astype(np.int64)),
        masks=torch.from_numpy(masks),
    )


def _sample_geometry(
    rng: np.random.Generator, labels: np.ndarray, size: int, *, avoid_patch: bool
) -> dict[str, np.ndarray]:
    """Per-image centre (pixels), rotation, scale (pixels per unit) and shape parameter.

    Unit shapes have circumradius 1 (the cross: arm half-length 1). The scale is chosen so that the
    rotated shape's larger bounding-box side hits a target drawn from `SIZE_RANGE` (narrowed by a pixel
    or two, so the rasterised mask, which can lose a thin star tip, lands inside the range), and the
    centre so that the box fits in the image.
    """
    n = len(labels)
    theta = rng.uniform(0.0, 2 * math.pi, n)
    tilt = CLASSIC.cross_tilts[0][1]
    theta = np.where(labels == 3, rng.uniform(-tilt, tilt, n), theta)  # a plus, not an x
    theta = np.where((labels == 0) | (labels == 5), 0.0, theta)  # discs: keeps their hull points on the axes
    param = np.select(
        [labels == 3, labels == 4, labels == 5],
        [
            rng.uniform(*CLASSIC.cross_arms[0], n),
            rng.uniform(*CLASSIC.star_inners[0], n),
            rng.uniform(*CLASSIC.ring_inners[0], n),
        ],
        0.0,
    )  # cross arm half-width, star inner radius, ring inner radius
    target = rng.uniform(SIZE_RANGE[0] * size + 2, SIZE_RANGE[1] * size - 1, n)

    verts = _hull_vertices(labels, param)  # [n, 8, 2] in the shape's frame
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    xs = verts[..., 0] * cos - verts[..., 1] * sin
    ys = verts[..., 0] * sin + verts[..., 1] * cos
    lo_x, hi_x, lo_y, hi_y = xs.min(1), xs.max(1), ys.min(1), ys.max(1)
    scale = target / np.maximum(hi_x - lo_x, hi_y - lo_y)
    lo_x, hi_x, lo_y, hi_y = lo_x * scale, hi_x * scale, lo_y * scale, hi_y * scale
    cx = -lo_x + rng.uniform(0, 1, n) * (size - (hi_x - lo_x))
    cy = -lo_y + rng.uniform(0, 1, n) * (size - (hi_y - lo_y))

    shift_x, shift_to = rng.uniform(0, 1, n) < 0.5, rng.uniform(0, 1, n)
    if avoid_patch:
        overlap = (cx + lo_x < PATCH_SIZE) & (cy + lo_y < PATCH_SIZE)
        new_cx = -lo_x + PATCH_SIZE + shift_to * (size - PATCH_SIZE - (hi_x - lo_x))
        new_cy = -lo_y + PATCH_SIZE + shift_to * (size - PATCH_SIZE - (hi_y - lo_y))
        cx = np.where(overlap & shift_x, new_cx, cx)
        cy = np.where(overlap & ~shift_x, new_cy, cy)
    return {"cx": cx, "cy": cy, "theta": theta, "scale": scale, "param": param}


def _hull_vertices(labels: np.ndarray, param: np.ndarray) -> np.ndarray:
    """Points [N, 8, 2] whose bounding box is the unit shape's (padded by repetition to 8 per shape)."""
    verts = np.zeros((len(labels), 8, 2))
    for cls, tips, offset in ((1, 4, math.pi / 4), (2, 3, math.pi / 2), (4, 5, math.pi / 2)):
        a = offset + 2 * math.pi * (np.arange(8) % tips) / tips  # square, triangle, star tips
        verts[labels == cls] = np.stack([np.cos(a), np.sin(a)], -1)
    cross = labels == 3
    w = param[cross, None]
    one = np.ones_like(w)
    xs = np.concatenate([one, one, -one, -one, w, -w, w, -w], axis=1)
    ys = np.concatenate([w, -w, w, -w, one, one, -one, -one], axis=1)
    verts[cross] = np.stack([xs, ys], -1)
    circular = (labels == 0) | (labels == 5)  # unrotated discs: their box [-1, 1]² is set by the axis points
    verts[circular] = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]] * 2, dtype=float)
    return verts


def _render_masks(labels: np.ndarray, geo: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Rasterise each shape: a pixel is on the object when its centre is inside the shape."""
    grid = np.arange(size, dtype=np.float32) + 0.5

    def col(key: str) -> np.ndarray:
        return geo[key].astype(np.float32)[:, None, None]

    dx = grid[None, None, :] - col("cx")
    dy = grid[None, :, None] - col("cy")
    cos, sin, scale = np.cos(col("theta")), np.sin(col("theta")), col("scale")
    u = (dx * cos + dy * sin) / scale  # pixel centres in the shape's own (unrotated, unit) frame
    v = (dy * cos - dx * sin) / scale
    return inside_unit_shape(labels, u, v, np.broadcast_to(col("param"), u.shape))


def inside_unit_shape(labels: np.ndarray, u: np.ndarray, v: np.ndarray, param: np.ndarray) -> np.ndarray:
    """Whether points (u, v) [N, ...] of each image's shape frame lie inside its unit shape.

    `labels` [N] picks the shape and `param` (shaped like u) its parameter: the cross's arm half-width,
    the star's inner radius, the ring's inner radius (unused for the other classes).
    """
    r2 = u * u + v * v
    inside = np.zeros(u.shape, dtype=bool)
    sel = labels == 0
    inside[sel] = r2[sel] <= 1.0
    sel = labels == 1
    inside[sel] = np.maximum(np.abs(u[sel]), np.abs(v[sel])) <= math.sqrt(0.5)
    sel = labels == 2  # equilateral triangle: inradius 1/2, outward edge normals at 270°, 30°, 150°
    inside[sel] = np.all(
        [u[sel] * math.cos(a) + v[sel] * math.sin(a) <= 0.5 for a in np.radians([270, 30, 150])], axis=0
    )
    sel = labels == 3
    au, av, w = np.abs(u[sel]), np.abs(v[sel]), param[sel]
    inside[sel] = ((au <= 1) & (av <= w)) | ((au <= w) & (av <= 1))
    sel = labels == 4
    inside[sel] = _inside_star(u[sel], v[sel], param[sel])
    sel = labels == 5
    inside[sel] = (r2[sel] <= 1.0) & (r2[sel] >= param[sel] ** 2)
    return inside


def _inside_star(u: np.ndarray, v: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Five-pointed star with tips on the unit circle (one pointing up the v axis), inner radius `inner`.

    The star is symmetric under rotations by 72° and reflection, so the angle is folded into one
    half-sector [0°, 36°], where the boundary is the single edge from the tip (1, 0) to the inner
    vertex at 36°; the point is inside when it is on the origin's side of that edge.
    """
    phi = np.mod(np.arctan2(v, u) - math.pi / 2, 2 * _STAR_TIP_ANGLE)
    phi = np.minimum(phi, 2 * _STAR_TIP_ANGLE - phi)
    r = np.sqrt(u * u + v * v)
    px, py = r * np.cos(phi), r * np.sin(phi)
    ex, ey = inner * math.cos(_STAR_TIP_ANGLE) - 1, inner * math.sin(_STAR_TIP_ANGLE)
    return ex * py - ey * (px - 1) >= 0


def _render_images(rng: np.random.Generator, masks: np.ndarray, size: int) -> np.ndarray:
    """Paint a textured background and a flat, contrasting object colour, then add pixel noise."""
    n = masks.shape[0]
    c1 = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    c2 = np.clip(
        c1 + rng.uniform(-CLASSIC.background_spread, CLASSIC.background_spread, (n, 3)), 0, 1
    ).astype(np.float32)
    t = _background_weights(rng, n, size)  # [n, H, W] in [0, 1]: background = c1 + t (c2 - c1)
    background = c1[:, :, None, None] + t[:, None] * (c2 - c1)[:, :, None, None]
    obj = contrasting_colours(rng, c1, c2)
    noise = rng.standard_normal((n, 3, size, size), dtype=np.float32) * rng.uniform(
        *CLASSIC.noise[0], (n, 1, 1, 1)
    )
    image = np.where(masks[:, None], obj[:, :, None, None], background) + noise
    return np.clip(image, 0, 1, dtype=np.float32)


def _background_weights(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """A per-image blend map in [0, 1] of one of the `BACKGROUNDS` kinds (each kind drawn only where used)."""
    kind = rng.integers(0, len(BACKGROUNDS), n)
    t = np.empty((n, size, size), dtype=np.float32)
    for index, name in enumerate(BACKGROUNDS):
        t[kind == index] = BACKGROUND_PAINTERS[name](rng, int((kind == index).sum()), size)
    return np.clip(t, 0, 1, out=t)


def contrasting_colours(
    rng: np.random.Generator, c1: np.ndarray, c2: np.ndarray, min_contrast: float = MIN_CONTRAST
) -> np.ndarray:
    """Per image, the first of several random colours at least `min_contrast` from the segment c1–c2.

    Every background pixel (before noise) lies on that segment in RGB space, so the object stands out
    everywhere; if no candidate qualifies (vanishingly rare), the farthest one is used.
    """
    cand = rng.uniform(0, 1, (c1.shape[0], _COLOUR_CANDIDATES, 3)).astype(np.float32)
    seg = (c2 - c1)[:, None]
    lam = np.clip(((cand - c1[:, None]) * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-12), 0, 1)
    dist = np.linalg.norm(cand - (c1[:, None] + lam[..., None] * seg), axis=-1)
    ok = dist >= min_contrast
    pick = np.where(ok.any(1), ok.argmax(1), dist.argmax(1))
    return cand[np.arange(len(pick)), pick]
