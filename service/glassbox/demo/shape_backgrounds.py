"""The background textures of the shapes generator: blend maps between a background's two colours.

Each painter returns maps [m, H, W] (unclipped; the renderer clips them to [0, 1]) for m images of side
`size`, drawing from the generator it is given. The classic style uses the first four, in a fixed order
(`shapes.BACKGROUNDS`), so their draws must not change; the widened styles (`shape_styles`) add the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def _centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates [1, H, W] relative to the image centre."""
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij")
    return xx[None] - size / 2, yy[None] - size / 2


def _directions(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and sine [m, 1, 1] of a random angle per image."""
    a = rng.uniform(0, 2 * math.pi, (m, 1, 1)).astype(np.float32)
    return np.cos(a), np.sin(a)


def _paint_noise(rng: np.random.Generator, m: int, size: int) -> np.ndarray:
    """Smooth value noise plus fine grain."""
    coarse = torch.from_numpy(rng.uniform(0, 1, (m, 1, 6, 6)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[:, 0].numpy()
    return smooth + 0.2 * rng.standard_normal((m, size, size), dtype=np.float32)


def _paint_gradient(rng: np.random.Generator, m: int, size: int) -> np.ndarray:
    """A linear gradient in a random direction, spanning 0..1 across the image."""
    xx, yy = _centred_grid(size)
    cos, sin = _directions(rng, m)
    return 0.5 + (xx * cos + yy * sin) / ((np.abs(cos) + np.abs(sin)) * size)


def _paint_stripes(rng: np.random.Generator, m: int, size: int) -> np.ndarray:
    """Stripes at a random angle, period 5-16 px, half of them hard-edged."""
    xx, yy = _centred_grid(size)
    cos, sin = _directions(rng, m)
    freq = rng.uniform(1 / 16, 1 / 5, (m, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * math.pi, (m, 1, 1)).astype(np.float32)
    wave = np.sin(2 * math.pi * freq * (xx * cos + yy * sin) + phase)
    return np.where(rng.uniform(0, 1, (m, 1, 1)) < 0.5, wave > 0, 0.5 + 0.5 * wave)


def _paint_blobs(rng: np.random.Generator, m: int, size: int) -> np.ndarray:
    """Five soft Gaussian blobs."""
    xx, yy = _centred_grid(size)
    centres = rng.uniform(-size / 2, size / 2, (m, 2, 5, 1, 1)).astype(np.float32)
    sigma = rng.uniform(3, 12, (m, 5, 1, 1)).astype(np.float32)
    d2 = (xx[:, None] - centres[:, 0]) ** 2 + (yy[:, None] - centres[:, 1]) ** 2
    return np.exp(-d2 / (2 * sigma**2)).sum(1)


def _paint_plain(rng: np.random.Generator, m: int, size: int) -> np.ndarray:
    """One flat colour (the noise is added later)."""
    return np.zeros((m, size, size), dtype=np.float32)


def _paint_radial(rng: np.random.Generator, m: int, size: int) -> np.ndarray:
    """A radial vignette: 0 at a random point, 1 at 20-60 px from it."""
    xx, yy = _centred_grid(size)
    centre = rng.uniform(-size / 2, size / 2, (m, 2, 1, 1)).astype(np.float32)
    radius = rng.uniform(20, 60, (m, 1, 1)).astype(np.float32)
    return np.hypot(xx - centre[:, 0], yy - centre[:, 1]) / radius


BackgroundPainter = Callable[[np.random.Generator, int, int], np.ndarray]
BACKGROUND_PAINTERS: dict[str, BackgroundPainter] = {
    "noise": _paint_noise,
    "gradient": _paint_gradient,
    "stripes": _paint_stripes,
    "blobs": _paint_blobs,
    "plain": _paint_plain,
    "radial": _paint_radial,
}
"""The painter of each background kind, by the name styles use."""
