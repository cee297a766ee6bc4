"""Images in (file paths, encoded bytes, PIL images, numpy arrays) and arrays and PIL images out.

Files and bytes travel encoded and untouched, so the server applies EXIF orientation and its own
decoding rules. PIL RGB images and numpy arrays travel as raw pixels (no lossy re-encoding); other
PIL modes (RGBA, palette, grayscale) are sent as PNG so the server converts them the way it converts
every file. Pixel values are never normalised here: the server owns normalisation.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TypeAlias

import numpy as np
from PIL import Image as PILImage

from glassbox_client._generated.glassbox.v1 import tensor_pb2

ImageInput: TypeAlias = str | os.PathLike[str] | bytes | PILImage.Image | np.ndarray
"""A file path, encoded bytes (PNG, JPEG, WebP, ...), a PIL image, or a numpy array:
uint8 [H, W, 3] (0–255), uint8 [H, W] (grayscale), or float [3, H, W] / [H, W, 3] in [0, 1]."""

_DTYPES: dict[int, np.dtype] = {
    tensor_pb2.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    tensor_pb2.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    tensor_pb2.DATA_TYPE_UINT8: np.dtype("u1"),
    tensor_pb2.DATA_TYPE_INT64: np.dtype("<i8"),
}


def to_proto_image(image: ImageInput) -> tensor_pb2.Image:
    """One input image as the wire message."""
    if isinstance(image, bytes):
        return tensor_pb2.Image(encoded=image)
    if isinstance(image, str | os.PathLike):
        return tensor_pb2.Image(encoded=Path(image).read_bytes())
    if isinstance(image, PILImage.Image):
        if image.mode == "RGB":
            return _pixels(np.asarray(image, dtype=np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return tensor_pb2.Image(encoded=buffer.getvalue())
    if isinstance(image, np.ndarray):
        return _pixels(_normalise_layout(image))
    kind = type(image).__name__
    raise TypeError(f"an image must be a path, bytes, a PIL image or a numpy array, not {kind}")


def _normalise_layout(array: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] or float32 [3, H, W], the two layouts the server accepts."""
    if array.dtype == np.uint8:
        if array.ndim == 2:
            return np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim == 3 and array.shape[2] == 3:
            return array
        raise ValueError(f"a uint8 image array must be [H, W, 3] or [H, W], got shape {list(array.shape)}")
    if np.issubdtype(array.dtype, np.floating):
        if array.ndim == 3 and array.shape[0] == 3:
            return array.astype(np.float32, copy=False)
        if array.ndim == 3 and array.shape[2] == 3:
            return np.transpose(array, (2, 0, 1)).astype(np.float32)
        raise ValueError(f"a float image array must be [3, H, W] or [H, W, 3], got shape {list(array.shape)}")
    raise ValueError(f"an image array must be uint8 (0-255) or float (0-1), got dtype {array.dtype}")


def _pixels(array: np.ndarray) -> tensor_pb2.Image:
    dtype = tensor_pb2.DATA_TYPE_UINT8 if array.dtype == np.uint8 else tensor_pb2.DATA_TYPE_FLOAT32
    data = np.ascontiguousarray(array, dtype=_DTYPES[dtype]).tobytes()
    return tensor_pb2.Image(pixels=tensor_pb2.Tensor(dtype=dtype, shape=list(array.shape), data=data))


def array_from_tensor(tensor: tensor_pb2.Tensor) -> np.ndarray | None:
    """A wire tensor as a numpy array (None for an unset tensor)."""
    if tensor.dtype not in _DTYPES:
        return None
    shape = tuple(tensor.shape)
    return np.frombuffer(tensor.data, dtype=_DTYPES[tensor.dtype]).reshape(shape).copy()


def image_from_png(data: bytes) -> PILImage.Image | None:
    """PNG bytes from the server as a loaded PIL image (None when the server sent none)."""
    if not data:
        return None
    image = PILImage.open(io.BytesIO(data))
    image.load()
    return image
