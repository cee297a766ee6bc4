"""The pixel contract: every image entering the core becomes float32 RGB [3, H, W] in [0, 1].

Decoding honours EXIF orientation and converts grayscale, palette and RGBA images to RGB. Only the
formats in `ACCEPTED_FORMATS` are opened at all (Pillow never tries another plugin: ICO and ICNS, for
instance, decode an embedded PNG while they are being opened), one frame only, and the pixel limit is
checked from the header before any pixel is decoded, so a decompression bomb costs nothing.
Resizing to a model's input size is described by an `InputSpec`; normalisation (mean/std) is *not*
done here: it lives inside the model wrapper, so ε, baselines and noise are in pixel space everywhere.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from glassbox.core.errors import InvalidArgument

ACCEPTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
"""The encoded formats the service opens (Pillow plugin ids), an explicit allow-list: each of them reads
its size from a header without decoding pixels. Everything else (ICO, ICNS, PSD, EPS, …) is refused
before Pillow looks further than the first bytes."""

MULTI_PICTURE_FORMATS = frozenset({"MPO"})
"""Formats whose extra frames are not an animation but companions of the first picture (a camera JPEG's
stereo pair or preview, opened by the JPEG plugin as MPO): the first picture is the image. Any other
image with more than one frame (an animated GIF, WebP or PNG, a multi-page TIFF) is refused."""

DEFAULT_DECODER_MAX_PIXELS = 40_000_000


def configure_decoder_limit(max_pixels: int) -> None:
    """Set Pillow's own decompression-bomb limit (process-wide) to the configured pixel limit: a backstop
    for every other `Image.open` in the process. Requests are checked against their own limit first."""
    PILImage.MAX_IMAGE_PIXELS = max_pixels


configure_decoder_limit(DEFAULT_DECODER_MAX_PIXELS)


class ResizePolicy(StrEnum):
    """How an image of any size is brought to the model's input size."""

    DIRECT = "direct"
    RESIZE_CENTER_CROP = "resize_center_crop"


@dataclass(frozen=True)
class InputSpec:
    """A model's input geometry."""

    height: int
    width: int
    resize: ResizePolicy = ResizePolicy.DIRECT
    crop_fraction: float = 0.875


@dataclass(frozen=True)
class CropBox:
    """The region of the original image (in original pixel coordinates) the model input shows."""

    top: float
    left: float
    height: float
    width: float


@dataclass(frozen=True)
class PreparedImage:
    """An image at the model's input size plus what is needed to map results back to the original."""

    pixels: torch.Tensor  # float32 [3, h, w] in [0, 1] at the model's input size
    original_size: tuple[int, int]  # (H, W) of the image as received
    crop: CropBox


DECODE_BYTES_PER_PIXEL = 3 + 3 + 12 + 12
"""Peak bytes per pixel while one encoded image is decoded and prepared: PIL's RGB image and its
numpy copy (3 + 3), the float32 [3, H, W] tensor (12), and a resized or resampled float copy (12)."""


def decoded_bytes(sources: list[ImageSource], *, max_pixels: int | None = None) -> int:
    """The memory decoding these images will take, read from their headers (nothing is decoded): what
    the compute scheduler admits before the decoding starts. An unreadable header, or one over
    `max_pixels`, counts as nothing here; decoding it fails with the field named."""
    total = 0
    for source in sources:
        if isinstance(source, bytes):
            try:
                with _open_header(source) as image:
                    width, height = image.size
            except Exception:  # refused, with its field, by decode_image
                continue
            if max_pixels is None or width * height <= max_pixels:
                total += DECODE_BYTES_PER_PIXEL * width * height
        else:
            total += int(source.nbytes) + 2 * 12 * int(source.size // 3)
    return total


def _open_header(data: bytes) -> PILImage.Image:
    """Open encoded bytes in an accepted format: Pillow reads the header only, no pixel is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", PILImage.DecompressionBombWarning
        )  # checked against the request's limit
        return PILImage.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)


def _sniff_format(data: bytes) -> str | None:
    """The Pillow plugin that would recognise these bytes, to name a refused format (header bytes only)."""
    for plugin_id, (_, accept) in PILImage.OPEN.items():
        if plugin_id in ACCEPTED_FORMATS or accept is None:
            continue
        try:
            if accept(data[:16]):
                return plugin_id
        except Exception:  # an accept function that needs more bytes
            continue
    return None


def decode_image(data: bytes, *, max_pixels: int, field: str) -> torch.Tensor:
    """Decode encoded image bytes (one of `ACCEPTED_FORMATS`, one frame) to float32 RGB [3, H, W] in [0, 1].

    The size is read from the header and checked against `max_pixels` before anything is decoded."""
    if not data:
        raise InvalidArgument("image bytes are empty", field=field)
    try:
        image = _open_header(data)
    except PILImage.DecompressionBombError as exc:  # Pillow's backstop, at twice its process-wide limit
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{claimed.group(1)} pixels" if claimed else "too many pixels"
        raise InvalidArgument(f"image is {size}, over the limit of {max_pixels}", field=field) from exc
    except UnidentifiedImageError as exc:
        found = _sniff_format(data)
        accepted = ", ".join(ACCEPTED_FORMATS)
        if found is not None:
            raise InvalidArgument(
                f"image format {found} is not accepted; send one of {accepted}", field=field
            ) from exc
        raise InvalidArgument(
            f"cannot decode image: not one of the accepted formats {accepted}", field=field
        ) from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise InvalidArgument(f"cannot decode image: {exc}", field=field) from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidArgument(f"image has zero size {width}x{height}", field=field)
        if width * height > max_pixels:
            raise InvalidArgument(
                f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
                field=field,
            )
        try:
            if image.format not in MULTI_PICTURE_FORMATS and getattr(image, "is_animated", False):
                raise InvalidArgument(
                    f"{image.format} image has more than one frame; send a single still image", field=field
                )
            image.load()
            rgb = _to_rgb(ImageOps.exif_transpose(image))
        except InvalidArgument:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, MemoryError) as exc:
            raise InvalidArgument(f"cannot decode image: {exc}", field=field) from exc
        array = np.asarray(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InvalidArgument(f"cannot decode image: decoded shape {list(array.shape)}", field=field)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def _to_rgb(image: PILImage.Image) -> PILImage.Image:
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = PILImage.new("RGBA", image.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def pixels_from_array(array: np.ndarray, *, max_pixels: int, field: str) -> torch.Tensor:
    """Accept float32 [3, H, W] in [0, 1] or uint8 [H, W, 3]; return float32 [3, H, W] in [0, 1]."""
    if array.dtype == np.uint8:
        if array.ndim != 3 or array.shape[2] != 3:
            raise InvalidArgument(
                f"uint8 pixels must have shape [H, W, 3], got {list(array.shape)}", field=f"{field}.shape"
            )
        height, width = array.shape[0], array.shape[1]
        tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)
    elif array.dtype in (np.float32, np.float16):
        if array.ndim != 3 or array.shape[0] != 3:
            raise InvalidArgument(
                f"float pixels must have shape [3, H, W], got {list(array.shape)}", field=f"{field}.shape"
            )
        height, width = array.shape[1], array.shape[2]
        tensor = torch.from_numpy(array.astype(np.float32, copy=True))
        if not bool(torch.isfinite(tensor).all()):
            raise InvalidArgument("pixels contain NaN or Inf", field=f"{field}.data")
        if tensor.numel() and (float(tensor.min()) < 0.0 or float(tensor.max()) > 1.0):
            raise InvalidArgument(
                f"float pixels must lie in [0, 1], "
                f"got [{float(tensor.min()):.4g}, {float(tensor.max()):.4g}]",
                field=f"{field}.data",
            )
    else:
        raise InvalidArgument(
            f"pixels must be float32 [3, H, W] or uint8 [H, W, 3], got dtype {array.dtype}",
            field=f"{field}.dtype",
        )
    if height == 0 or width == 0:
        raise InvalidArgument(f"image has zero size {width}x{height}", field=f"{field}.shape")
    if height * width > max_pixels:
        raise InvalidArgument(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
            field=f"{field}.shape",
        )
    return tensor


def prepare(pixels: torch.Tensor, spec: InputSpec) -> PreparedImage:
    """Bring a [3, H, W] image in [0, 1] to the model's input size under its resize policy."""
    _, height, width = pixels.shape
    if spec.resize is ResizePolicy.DIRECT:
        out = _resize(pixels, spec.height, spec.width)
        crop = CropBox(0.0, 0.0, float(height), float(width))
    else:
        scale = max(spec.height / spec.crop_fraction / height, spec.width / spec.crop_fraction / width)
        resized_h, resized_w = max(spec.height, round(height * scale)), max(spec.width, round(width * scale))
        resized = _resize(pixels, resized_h, resized_w)
        top, left = (resized_h - spec.height) // 2, (resized_w - spec.width) // 2
        out = resized[:, top : top + spec.height, left : left + spec.width]
        crop = CropBox(
            top=top * height / resized_h,
            left=left * width / resized_w,
            height=spec.height * height / resized_h,
            width=spec.width * width / resized_w,
        )
    return PreparedImage(pixels=out.contiguous(), original_size=(height, width), crop=crop)


def _resize(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if pixels.shape[1:] == (height, width):
        return pixels
    out = F.interpolate(
        pixels[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return out[0].clamp_(0.0, 1.0)


def to_original_size(map_: torch.Tensor, image: PreparedImage) -> torch.Tensor:
    """Resample a [..., h, w] map at input resolution onto the original image; zero outside the crop."""
    height, width = image.original_size
    crop = image.crop
    crop_h, crop_w = max(1, round(crop.height)), max(1, round(crop.width))
    lead = map_.shape[:-2]
    flat = map_.reshape(-1, 1, *map_.shape[-2:]).float()
    resized = F.interpolate(flat, size=(crop_h, crop_w), mode="bilinear", align_corners=False)
    out = torch.zeros(flat.shape[0], 1, height, width, dtype=resized.dtype)
    top, left = round(crop.top), round(crop.left)
    h, w = min(crop_h, height - top), min(crop_w, width - left)
    out[:, :, top : top + h, left : left + w] = resized[:, :, :h, :w]
    return out.reshape(*lead, height, width)


ImageSource = bytes | np.ndarray
"""An image as received: encoded bytes, or a pixel array (float [3, H, W] in [0, 1] or uint8 [H, W, 3])."""


def received_pixels(source: ImageSource, *, max_pixels: int, field: str) -> torch.Tensor:
    """Decode (encoded bytes) or validate (an array) one received image: float32 [3, H, W] in [0, 1] at
    the size it came in; InvalidArgument naming `field`.encoded or `field`.pixels."""
    if isinstance(source, bytes):
        return decode_image(source, max_pixels=max_pixels, field=f"{field}.encoded")
    return pixels_from_array(source, max_pixels=max_pixels, field=f"{field}.pixels")


def load_image(source: ImageSource, spec: InputSpec, *, max_pixels: int, field: str) -> PreparedImage:
    """Decode or validate one received image and bring it to the model's input size."""
    return prepare(received_pixels(source, max_pixels=max_pixels, field=field), spec)


def check_image_count(sources: list[ImageSource], *, max_images: int, field: str = "images") -> None:
    """At least one image, at most `max_images`; InvalidArgument naming `field` otherwise."""
    if not sources:
        raise InvalidArgument("at least one image is required", field=field)
    if len(sources) > max_images:
        raise InvalidArgument(
            f"{len(sources)} images is over the limit of {max_images} per request", field=field
        )


def load_images(
    sources: list[ImageSource], spec: InputSpec, *, max_pixels: int, max_images: int, field: str = "images"
) -> list[PreparedImage]:
    """Load a request's images; at least one, at most `max_images`."""
    check_image_count(sources, max_images=max_images, field=field)
    return [load_image(s, spec, max_pixels=max_pixels, field=f"{field}[{i}]") for i, s in enumerate(sources)]
