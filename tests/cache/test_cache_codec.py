"""Cache value framing: round trips, compression, and every damaged or foreign value decodes to None."""

from __future__ import annotations

import numpy as np
import pytest
from glassbox.cache import codec


@pytest.mark.parametrize("size", [0, 1, 511, 512, 100_000])
def test_round_trip(size: int) -> None:
    payload = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert codec.decode(codec.encode(payload)) == payload


def test_compressible_payload_is_stored_compressed() -> None:
    payload = np.zeros((64, 64), dtype=np.float32).tobytes()
    frame = codec.encode(payload)
    assert frame.startswith(codec.MAGIC)
    assert len(frame) < len(payload) // 10


def test_incompressible_payload_is_stored_raw_with_only_the_header_added() -> None:
    payload = np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    assert len(codec.encode(payload)) == len(payload) + 10


def test_a_large_payload_is_compressed_only_when_its_head_shrinks() -> None:
    """A float32 attribution map of a 224² image hardly compresses: probing its first 64 KiB saves the
    ~4.5 ms zlib would spend on all of it; a map that compresses (here, mostly zeros) still is."""
    noisy = np.random.default_rng(2).standard_normal((3, 224, 224)).astype(np.float32).tobytes()
    assert len(codec.encode(noisy)) == len(noisy) + 10
    sparse = np.zeros((3, 224, 224), dtype=np.float32)
    sparse[:, 100:120, 100:120] = np.random.default_rng(3).standard_normal((3, 20, 20))
    frame = codec.encode(sparse.tobytes())
    assert len(frame) < sparse.nbytes // 10 and codec.decode(frame) == sparse.tobytes()


def _flip(frame: bytes, index: int) -> bytes:
    return frame[:index] + bytes([frame[index] ^ 0x01]) + frame[index + 1 :]


@pytest.mark.parametrize("compressible", [True, False])
def test_a_damaged_frame_never_decodes_to_a_wrong_payload(compressible: bool) -> None:
    rng = np.random.default_rng(1)
    pattern = (np.arange(2000) % 17).astype(np.uint8)
    payload = (pattern if compressible else rng.integers(0, 256, 2000, dtype=np.uint8)).tobytes()
    frame = codec.encode(payload)
    assert (len(frame) < len(payload)) == compressible
    refused = 0
    for index in range(len(frame)):
        decoded = codec.decode(_flip(frame, index))
        # A flip inside a deflate back-reference of a repeating run can decode to the same bytes.
        assert decoded is None or decoded == payload, f"flipped byte {index} decoded to a wrong payload"
        refused += decoded is None
    assert refused >= 0.8 * len(frame)
    assert codec.decode(frame[:-1]) is None
    assert codec.decode(frame[:5]) is None


@pytest.mark.parametrize(
    "foreign",
    [
        b"",
        b"hello",
        b'{"json": true}',
        b"GBXC",
        b"GBXC\x02\x00\x00\x00\x00\x00abc",
        b"GBXC\x01\x07\x00\x00\x00\x00",
    ],
)
def test_foreign_values_are_refused(foreign: bytes) -> None:
    assert codec.decode(foreign) is None
