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
