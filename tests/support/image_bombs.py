"""A corpus of decompression bombs, one or more per image format the server accepts and per format it
refuses, generated here (each file a few kB), and a watch on the process' peak resident memory.

A bomb claims (or really has) far more pixels than the default limit of 40,000,000: real ones are a
blank 1-bit image that compresses to almost nothing (PNG, TIFF group 4, and the same PNG wrapped in an
ICO and an ICNS, which Pillow would decode while opening or loading the container); header bombs are a
small valid image whose header was patched to claim 65535 × 65535 (or the format's maximum). Animated
and multi-page images are in the corpus too: only single still images are accepted.
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REAL_BOMB_SIDE = 9000
"""9000² = 81 M pixels: twice the default limit, 10 kB as a 1-bit PNG; 240 MB decoded as RGB."""


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _small(fmt: str, **options: object) -> bytes:
    return _encode(Image.new("RGB", (8, 8), (10, 200, 30)), fmt, **options)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_bomb() -> bytes:
    """A valid PNG signature and IHDR claiming 65535 × 65535 RGB, then a few scanlines of zeros."""
    ihdr = struct.pack(">IIBBBBB", 65535, 65535, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + 3 * 65535) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_real_bomb() -> bytes:
    return _encode(Image.new("1", (REAL_BOMB_SIDE, REAL_BOMB_SIDE)), "PNG")


def tiff_real_bomb() -> bytes:
    return _encode(Image.new("1", (REAL_BOMB_SIDE, REAL_BOMB_SIDE)), "TIFF", compression="group4")


def jpeg_header_bomb() -> bytes:
    """An 8 × 8 baseline JPEG whose SOF0 claims 65535 × 65535."""
    data = bytearray(_small("JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 65535, 65535)
    return bytes(data)


def webp_header_bomb() -> bytes:
    """An 8 × 8 lossy WebP whose VP8 frame header claims 16383 × 16383 (the format's maximum)."""
    data = bytearray(_small("WEBP", quality=50))
    start = data.index(b"\x9d\x01\x2a")
    struct.pack_into("<HH", data, start + 3, 16383, 16383)
    return bytes(data)


def gif_header_bomb() -> bytes:
    """An 8 × 8 GIF whose logical screen and image descriptor claim 65535 × 65535."""
    data = bytearray(_small("GIF"))
    struct.pack_into("<HH", data, 6, 65535, 65535)
    descriptor = data.index(b"\x2c", 13)
    struct.pack_into("<HH", data, descriptor + 5, 65535, 65535)
    return bytes(data)


def bmp_header_bomb() -> bytes:
    """An 8 × 8 BMP whose info header claims 50000 × 50000."""
    data = bytearray(_small("BMP"))
    struct.pack_into("<ii", data, 18, 50000, 50000)
    return bytes(data)


def ico_bomb() -> bytes:
    """An ICO with one entry: the 81 MP PNG bomb (Pillow decodes an ICO's PNG while opening it)."""
    png = png_real_bomb()
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def icns_bomb() -> bytes:
    """An ICNS with one 1024-pixel slot holding the 81 MP PNG bomb (decoded by Pillow's load())."""
    png = png_real_bomb()
    element = b"ic10" + struct.pack(">I", 8 + len(png)) + png
    return b"icns" + struct.pack(">I", 8 + len(element)) + element


def _frames(fmt: str, **options: object) -> bytes:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], **options)
    return buffer.getvalue()


@dataclass(frozen=True)
class Bomb:
    name: str
    make: Callable[[], bytes]
    why: str
    """What the refusal says: "over the limit", "not accepted" or "more than one frame"."""


BOMBS: tuple[Bomb, ...] = (
    Bomb("png-header", png_header_bomb, "over the limit"),
    Bomb("png-real", png_real_bomb, "over the limit"),
    Bomb("tiff-real", tiff_real_bomb, "over the limit"),
    Bomb("jpeg-header", jpeg_header_bomb, "over the limit"),
    Bomb("webp-header", webp_header_bomb, "over the limit"),
    Bomb("gif-header", gif_header_bomb, "over the limit"),
    Bomb("bmp-header", bmp_header_bomb, "over the limit"),
    Bomb("ico-png", ico_bomb, "not accepted"),
    Bomb("icns-png", icns_bomb, "not accepted"),
    Bomb("gif-animated", lambda: _frames("GIF", duration=100, loop=0), "more than one frame"),
    Bomb("png-animated", lambda: _frames("PNG", duration=100), "more than one frame"),
    Bomb("webp-animated", lambda: _frames("WEBP", duration=100, lossless=True), "more than one frame"),
    Bomb("tiff-multipage", lambda: _frames("TIFF"), "more than one frame"),
)
"""Every accepted format (PNG, JPEG, WEBP, GIF, BMP, TIFF) and the containers that decode on open."""


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """The largest resident set size of this process seen while the watch runs (sampled every 2 ms)."""

    def __init__(self) -> None:
        self.baseline = _rss_bytes()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.002)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@contextmanager
def watch_rss() -> Iterator[PeakRss]:
    watch = PeakRss()
    watch._thread.start()
    try:
        yield watch
    finally:
        watch._stop.set()
        watch._thread.join()
        watch.peak = max(watch.peak, _rss_bytes())
