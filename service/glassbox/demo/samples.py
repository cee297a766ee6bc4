"""Sample images for the examples in README.md and docs/: one clean shape of each demo class.

    glassbox demo samples                      # writes docs/images/samples/{circle,square,...}.png

They are drawn by the demo's own shapes generator (`glassbox.demo.shapes`) at 128 × 128 pixels, twice the
demo models' input size, so that `--original-size` pictures differ from the model-size ones. The shipped
files are the ones the examples open; this command draws them again from its seed (the same pictures
while the generator stays as it is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from glassbox.demo.shapes import CLASSES, generate

SAMPLES_FOLDER = Path("docs/images/samples")
SAMPLE_SIZE = 128
SAMPLE_SEED = 7
_CANDIDATES = 60  # images drawn to find the first of each class


def sample_images(seed: int = SAMPLE_SEED, size: int = SAMPLE_SIZE) -> dict[str, np.ndarray]:
    """The first generated image of each class, as uint8 [H, W, 3], by class name in `CLASSES` order.

    Args:
        seed: the generator's seed.
        size: the images' side in pixels.

    Example:
        >>> sorted(sample_images(size=32)) == sorted(CLASSES)
        True
    """
    batch = generate(_CANDIDATES, seed, size=size)
    labels = batch.labels.tolist()
    pixels = (batch.images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return {name: pixels[labels.index(index)] for index, name in enumerate(CLASSES)}


def write_samples(
    folder: Path = SAMPLES_FOLDER, *, seed: int = SAMPLE_SEED, size: int = SAMPLE_SIZE
) -> list[Path]:
    """Write `<class>.png` for every demo class into `folder` (created); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pixels in sample_images(seed, size).items():
        path = folder / f"{name}.png"
        Image.fromarray(pixels).save(path, optimize=True)
        written.append(path)
    return written
