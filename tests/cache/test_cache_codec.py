"""Cache value framing: round trips, compression, and every damaged, foreign, forged or moved value is
refused (with its reason)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from glassbox.cache import codec
from glassbox.cache.codec import Rejected
from glassbox.cache.factory import signing_key
from glassbox.config import CacheSettings

KEY = b"k" * 32
NAME = "glassbox:attribution:v1:abc"


def encode(payload: bytes) -> bytes:
    return codec.encode(payload, key=KEY, name=NAME)


def decode(frame: bytes) -> bytes | None:
    decoded = codec.decode(frame, key=KEY, name=NAME)
    return None if isinstance(decoded, Rejected) else decoded


@pytest.mark.parametrize("size", [0, 1, 511, 512, 100_000])
def test_round_trip(size: int) -> None:
    payload = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert decode(encode(payload)) == payload


def test_compressible_payload_is_stored_compressed() -> None:
    payload = np.zeros((64, 64), dtype=np.float32).tobytes()
    frame = encode(payload)
    assert frame.startswith(codec.MAGIC)
    assert len(frame) < len(payload) // 10


def test_incompressible_payload_is_stored_raw_with_only_the_header_added() -> None:
    payload = np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    assert len(encode(payload)) == len(payload) + 38


def test_a_large_payload_is_compressed_only_when_its_head_shrinks() -> None:
    """A float32 attribution map of a 224² image hardly compresses: probing its first 64 KiB saves the
    ~4.5 ms zlib would spend on all of it; a map that compresses (here, mostly zeros) still is."""
    noisy = np.random.default_rng(2).standard_normal((3, 224, 224)).astype(np.float32).tobytes()
    assert len(encode(noisy)) == len(noisy) + 38
    sparse = np.zeros((3, 224, 224), dtype=np.float32)
    sparse[:, 100:120, 100:120] = np.random.default_rng(3).standard_normal((3, 20, 20))
    frame = encode(sparse.tobytes())
    assert len(frame) < sparse.nbytes // 10 and decode(frame) == sparse.tobytes()


def _flip(frame: bytes, index: int) -> bytes:
    return frame[:index] + bytes([frame[index] ^ 0x01]) + frame[index + 1 :]


@pytest.mark.parametrize("compressible", [True, False])
def test_a_damaged_frame_never_decodes_to_a_wrong_payload(compressible: bool) -> None:
    rng = np.random.default_rng(1)
    pattern = (np.arange(2000) % 17).astype(np.uint8)
    payload = (pattern if compressible else rng.integers(0, 256, 2000, dtype=np.uint8)).tobytes()
    frame = encode(payload)
    assert (len(frame) < len(payload)) == compressible
    refused = 0
    for index in range(len(frame)):
        decoded = decode(_flip(frame, index))
        # A flip inside a deflate back-reference of a repeating run can decode to the same bytes.
        assert decoded is None or decoded == payload, f"flipped byte {index} decoded to a wrong payload"
        refused += decoded is None
    assert refused >= 0.8 * len(frame)
    assert decode(frame[:-1]) is None
    assert decode(frame[:5]) is None


@pytest.mark.parametrize(
    "foreign",
    [
        b"",
        b"hello",
        b'{"json": true}',
        b"GBXC",
        b"GBXC\x02\x00" + bytes(32) + b"abc",
        b"GBXC\x02\x07" + bytes(32),
        b"GBXC\x01\x00\x00\x00\x00\x00abc",  # format 1 (checksummed, unsigned)
    ],
)
def test_foreign_values_are_refused(foreign: bytes) -> None:
    assert decode(foreign) is None


def test_a_value_signed_with_another_key_or_stored_under_another_name_is_refused() -> None:
    frame = encode(b"a result")
    assert codec.decode(frame, key=b"x" * 32, name=NAME) is Rejected.SIGNATURE
    assert codec.decode(frame, key=KEY, name=NAME + "0") is Rejected.SIGNATURE
    assert codec.decode(b"hello", key=KEY, name=NAME) is Rejected.MALFORMED


def test_a_forged_compressed_value_is_refused_before_it_is_decompressed() -> None:
    """A zlib bomb written into Redis never reaches zlib: the MAC is checked first."""
    bomb = zlib.compress(bytes(50_000_000), 9)
    forged = b"GBXC\x02\x01" + bytes(32) + bomb
    assert codec.decode(forged, key=KEY, name=NAME) is Rejected.SIGNATURE


def test_the_signing_key_comes_from_a_file_then_the_setting_else_is_random(tmp_path) -> None:
    secret = tmp_path / "cache-key"
    secret.write_bytes(b"  from the file, long enough\n")
    assert signing_key(CacheSettings(signing_key_file=secret, signing_key="from the setting!")) == (
        b"from the file, long enough"
    )
    assert signing_key(CacheSettings(signing_key="from the setting!")) == b"from the setting!"
    generated = signing_key(CacheSettings())
    assert len(generated) == 32 and generated != signing_key(CacheSettings())
    with pytest.raises(ValueError, match="at least 16 bytes"):
        signing_key(CacheSettings(signing_key="short"))
    with pytest.raises(ValueError, match=r"cannot read cache\.signing_key_file"):
        signing_key(CacheSettings(signing_key_file=tmp_path / "missing"))
