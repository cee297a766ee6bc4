"""The pixel contract: decoding, EXIF orientation, colour modes, limits and resizing."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from glassbox.core.errors import InvalidArgument
from glassbox.core.images import (
    InputSpec,
    ResizePolicy,
    decode_image,
    load_image,
    pixels_from_array,
    prepare,
    to_original_size,
)
from PIL import Image

LIMIT = 10_000_000


def encode(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_png_decodes_to_float_rgb_in_unit_range() -> None:
    array = np.zeros((4, 6, 3), dtype=np.uint8)
    array[..., 0] = 255
    pixels = decode_image(encode(Image.fromarray(array)), max_pixels=LIMIT, field="image")
    assert pixels.shape == (3, 4, 6) and pixels.dtype == torch.float32
    assert torch.equal(pixels[0], torch.ones(4, 6)) and float(pixels[1:].abs().max()) == 0.0


def test_exif_orientation_is_honoured() -> None:
    array = np.zeros((2, 4, 3), dtype=np.uint8)  # 4 wide, 2 high
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    pixels = decode_image(encode(image, "JPEG", exif=exif), max_pixels=LIMIT, field="image")
    assert pixels.shape == (3, 4, 2)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "I;16", "CMYK"])
def test_colour_modes_become_rgb(mode: str) -> None:
    image = Image.new("RGB", (5, 3), (200, 100, 50)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    pixels = decode_image(encode(image, fmt), max_pixels=LIMIT, field="image")
    assert pixels.shape == (3, 3, 5)


def test_transparent_pixels_are_composited_on_white() -> None:
    image = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    pixels = decode_image(encode(image), max_pixels=LIMIT, field="image")
    assert torch.allclose(pixels, torch.ones_like(pixels))


@pytest.mark.parametrize("data", [b"", b"not an image", encode(Image.new("RGB", (64, 64)))[:40]])
def test_corrupt_or_truncated_bytes_name_the_field(data: bytes) -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_image(data, max_pixels=LIMIT, field="images[0].encoded")
    assert info.value.field == "images[0].encoded"


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    bomb = encode(Image.new("1", (6000, 6000)))  # 36 MP, a few kB compressed
    assert len(bomb) < 100_000
    with pytest.raises(InvalidArgument, match="over the limit"):
        decode_image(bomb, max_pixels=LIMIT, field="image")


def test_arrays_in_both_layouts() -> None:
    uint8 = np.full((4, 5, 3), 255, dtype=np.uint8)
    assert torch.allclose(pixels_from_array(uint8, max_pixels=LIMIT, field="p"), torch.ones(3, 4, 5))
    floats = np.full((3, 4, 5), 0.5, dtype=np.float32)
    assert torch.allclose(pixels_from_array(floats, max_pixels=LIMIT, field="p"), torch.full((3, 4, 5), 0.5))


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((3, 4, 4), np.nan, dtype=np.float32), "NaN or Inf"),
        (np.full((3, 4, 4), np.inf, dtype=np.float32), "NaN or Inf"),
        (np.full((3, 4, 4), 2.0, dtype=np.float32), r"\[0, 1\]"),
        (np.zeros((4, 4, 4), dtype=np.float32), r"shape \[3, H, W\]"),
        (np.zeros((4, 4, 4), dtype=np.uint8), r"shape \[H, W, 3\]"),
        (np.zeros((3, 0, 4), dtype=np.float32), "zero size"),
        (np.zeros((3, 4, 4), dtype=np.int64), "dtype"),
    ],
)
def test_bad_arrays_are_refused(array: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        pixels_from_array(array, max_pixels=LIMIT, field="images[0].pixels")


def test_direct_resize_and_center_crop() -> None:
    pixels = torch.rand(3, 100, 200)
    direct = prepare(pixels, InputSpec(64, 64, ResizePolicy.DIRECT))
    assert direct.pixels.shape == (3, 64, 64) and direct.original_size == (100, 200)
    cropped = prepare(pixels, InputSpec(64, 64, ResizePolicy.RESIZE_CENTER_CROP, crop_fraction=0.875))
    assert cropped.pixels.shape == (3, 64, 64)
    assert cropped.crop.height == pytest.approx(87.5, abs=1.5) and cropped.crop.left > 40


def test_maps_resample_to_the_original_size_inside_the_crop() -> None:
    image = prepare(torch.rand(3, 100, 200), InputSpec(64, 64, ResizePolicy.RESIZE_CENTER_CROP))
    full = to_original_size(torch.ones(64, 64), image)
    assert full.shape == (100, 200)
    assert float(full[:, :20].abs().max()) == 0.0 and float(full[50, 100]) == pytest.approx(1.0)


def test_load_image_accepts_bytes_and_arrays() -> None:
    spec = InputSpec(8, 8)
    from_bytes = load_image(
        encode(Image.new("RGB", (16, 16), (255, 0, 0))), spec, max_pixels=LIMIT, field="i"
    )
    from_array = load_image(
        np.full((16, 16, 3), (255, 0, 0), dtype=np.uint8), spec, max_pixels=LIMIT, field="i"
    )
    assert torch.allclose(from_bytes.pixels, from_array.pixels)
