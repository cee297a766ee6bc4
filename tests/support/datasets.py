"""Named image sets on disk for tests: a folder set of three small squares with labels and masks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_folder_set(folder: Path, *, masks: bool = True) -> None:
    """Three 32x32 images (the model takes 64x64): a white square on black, its mask, labels by name or
    by index."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(3):
        image = np.zeros((32, 32, 3), dtype=np.uint8)
        image[8 + i : 16 + i, 8:16] = 255
        (folder / "images" / f"img{i}.png").write_bytes(png(image))
        if masks:
            (folder / "masks" / f"img{i}.png").write_bytes(png(image[:, :, 0]))
    (folder / "labels.csv").write_text("file,label\nimg0.png,square\nimg1.png,4\nimg2.png,ring\n")
    toml = 'description = "three squares"\nimages = "images"\nlabels = "labels.csv"\n'
    (folder / "dataset.toml").write_text(toml + ('masks = "masks"\n' if masks else ""))
