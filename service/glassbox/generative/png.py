"""PNG encoding of generated images (results and progress previews)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image as PILImage


def encode_png(images: torch.Tensor) -> bytes:
    """An 8-bit RGB PNG of an image [3, H, W] or of a batch [B, 3, H, W] side by side; values in [0, 1]."""
    batch = images.detach().float().cpu().clamp(0.0, 1.0)
    if batch.dim() == 3:
        batch = batch[None]
    row = torch.cat(list(batch), dim=2)  # [3, H, B * W]
    array = (row.permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()
