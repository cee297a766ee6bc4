"""Shapes drawn by a renderer independent of `glassbox.demo.shapes`: a check that the demo model learned
the six classes, not the quirks of its own generator.

Written from the README's class names alone (circle, square, triangle, cross, star, ring) with Pillow's
ImageDraw: polygons and ellipses drawn at 4× and downsampled (anti-aliased edges), on plain, gradient,
noisy and blotchy backgrounds. Nothing here is shared with the generator: other geometry conventions,
other colour choice, other textures.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

CLASS_NAMES = ("circle", "square", "triangle", "cross", "star", "ring")
SUPERSAMPLE = 4
BACKGROUND_KINDS = ("plain", "gradient", "noise", "blotches")


def render_independent_shapes(n: int, seed: int, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` images float32 [n, 3, size, size] in [0, 1] and their labels int64 [n] (classes in turn)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASS_NAMES)
    images = np.stack([_draw_one(rng, CLASS_NAMES[label], size) for label in labels])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels).long()


def _draw_one(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    big = size * SUPERSAMPLE
    background, mean_colour = _background(rng, big)
    colour = _far_colour(rng, mean_colour)
    canvas = Image.fromarray(background)
    draw = ImageDraw.Draw(canvas)
    extent = rng.uniform(0.35, 0.8) * big  # the shape's width across, before rotation
    half = extent / 2
    margin = half * 1.05
    centre = (rng.uniform(margin, big - margin), rng.uniform(margin, big - margin))
    outline_only = name in ("square", "triangle", "star") and rng.uniform() < 0.2
    line_width = max(int(rng.uniform(0.12, 0.22) * half), SUPERSAMPLE * 2)

    def polygon(points: list[tuple[float, float]]) -> None:
        if outline_only:
            draw.polygon(points, outline=colour, width=line_width)
        else:
            draw.polygon(points, fill=colour)

    if name == "circle":
        draw.ellipse(_box(centre, half), fill=colour)
    elif name == "ring":
        draw.ellipse(_box(centre, half), outline=colour, width=int(half * rng.uniform(0.3, 0.5)))
    elif name == "square":
        polygon(_regular(centre, half * math.sqrt(2), 4, rng.uniform(0, 2 * math.pi)))
    elif name == "triangle":
        polygon(_regular(centre, half / math.cos(math.pi / 6), 3, rng.uniform(0, 2 * math.pi)))
    elif name == "star":
        polygon(_star(centre, half, rng.uniform(0.38, 0.5), rng.uniform(0, 2 * math.pi)))
    else:  # a plus sign, tilted a little
        arm = rng.uniform(0.2, 0.38) * half
        tilt = rng.uniform(-math.pi / 12, math.pi / 12)
        for along in (0.0, math.pi / 2):
            draw.polygon(_rotated_rectangle(centre, half, arm, tilt + along), fill=colour)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _box(centre: tuple[float, float], radius: float) -> tuple[float, float, float, float]:
    return (centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius)


def _regular(
    centre: tuple[float, float], radius: float, corners: int, turn: float
) -> list[tuple[float, float]]:
    return [
        (
            centre[0] + radius * math.cos(turn + 2 * math.pi * k / corners),
            centre[1] + radius * math.sin(turn + 2 * math.pi * k / corners),
        )
        for k in range(corners)
    ]


def _star(centre: tuple[float, float], radius: float, inner: float, turn: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * inner
        a = turn + math.pi * k / 5
        points.append((centre[0] + r * math.cos(a), centre[1] + r * math.sin(a)))
    return points


def _rotated_rectangle(
    centre: tuple[float, float], half_length: float, half_width: float, angle: float
) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    corners = [
        (half_length, half_width),
        (-half_length, half_width),
        (-half_length, -half_width),
        (half_length, -half_width),
    ]
    return [(centre[0] + x * c - y * s, centre[1] + x * s + y * c) for x, y in corners]


def _background(rng: np.random.Generator, big: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 background [big, big, 3] of a random kind, and its mean colour (0-255 floats)."""
    kind = BACKGROUND_KINDS[rng.integers(len(BACKGROUND_KINDS))]
    base = rng.uniform(0, 255, 3)
    if kind == "plain":
        pixels = np.broadcast_to(base, (big, big, 3)).astype(np.float64)
    elif kind == "gradient":
        other = np.clip(base + rng.uniform(-90, 90, 3), 0, 255)
        ramp = np.linspace(0, 1, big)[:, None] * np.ones((1, big))
        ramp = np.rot90(ramp, int(rng.integers(4)))[..., None]
        pixels = base * (1 - ramp) + other * ramp
    elif kind == "noise":
        pixels = base + rng.normal(
            0, rng.uniform(10, 35), (big // SUPERSAMPLE, big // SUPERSAMPLE, 3)
        ).repeat(SUPERSAMPLE, 0).repeat(SUPERSAMPLE, 1)
    else:  # soft blotches of nearby colours
        image = Image.new("RGB", (big, big), tuple(int(c) for c in base))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            tint = tuple(int(c) for c in np.clip(base + rng.uniform(-70, 70, 3), 0, 255))
            x, y, r = rng.uniform(0, big), rng.uniform(0, big), rng.uniform(0.1, 0.3) * big
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tint)
        pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(big / 20)), dtype=np.float64)
    pixels = np.clip(pixels, 0, 255)
    return pixels.astype(np.uint8), pixels.reshape(-1, 3).mean(0)


def _far_colour(rng: np.random.Generator, mean_colour: np.ndarray) -> tuple[int, int, int]:
    """A random colour at least 110 (of 255, Euclidean RGB) from the background's mean colour."""
    for _ in range(200):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - mean_colour) >= 110:
            break
    return (int(colour[0]), int(colour[1]), int(colour[2]))
