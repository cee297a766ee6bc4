"""Cache values on the wire: a framed, signed, optionally compressed byte string.

Frame: magic `GBXC` | format version (1 byte) | compression (1 byte) | HMAC-SHA256 (32 bytes) | body.
The MAC is computed with the server's signing key over the cache key the value is stored under, the
format version, the compression and the body: whoever can write into Redis but does not hold the key
can neither forge a value nor move a genuine one to another key. Anything that does not parse, has
another version or fails the MAC decodes to a `Rejected` reason (checked before decompressing), so a
forged, corrupt or foreign value, or one written by an older Glassbox or with another key, is a miss.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from enum import StrEnum

MAGIC = b"GBXC"
FORMAT_VERSION = 2
_HEADER = struct.Struct(">4sBB32s")
MIN_KEY_BYTES = 16
"""Shortest signing key accepted (a generated one has 32 random bytes)."""
_RAW, _ZLIB = 0, 1
COMPRESS_MIN_BYTES = 512
"""Smaller payloads are stored raw: compression would not pay for its header and time."""
ZLIB_LEVEL = 1
"""Fast: attribution maps are float32 noise-like data where higher levels gain little and cost a lot."""
PROBE_BYTES = 64 * 1024
"""A larger payload is compressed only if its first PROBE_BYTES shrink by MIN_SAVING: a float32 map of a
224² image (600 kB) barely compresses, and zlib would add ~4.5 ms to every miss for a few percent."""
MIN_SAVING = 0.1


class Rejected(StrEnum):
    """Why a stored value was not used."""

    MALFORMED = "malformed"  # not a frame of this format version: foreign, truncated, older Glassbox
    SIGNATURE = "signature"  # a frame whose MAC does not verify: forged, moved, damaged or another key


def _mac(key: bytes, name: str, compression: int, body: bytes | memoryview) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    encoded_name = name.encode("utf-8")
    mac.update(struct.pack(">I", len(encoded_name)) + encoded_name + bytes([FORMAT_VERSION, compression]))
    mac.update(body)
    return mac.digest()


def encode(payload: bytes, *, key: bytes, name: str) -> bytes:
    """Frame `payload` for storage under the cache key `name`, compressing it when that makes it
    smaller, signed with `key`."""
    compression, body = _RAW, payload
    if len(payload) >= COMPRESS_MIN_BYTES and _compressible(payload):
        compressed = zlib.compress(payload, ZLIB_LEVEL)
        if len(compressed) < len(payload):
            compression, body = _ZLIB, compressed
    return _HEADER.pack(MAGIC, FORMAT_VERSION, compression, _mac(key, name, compression, body)) + body


def _compressible(payload: bytes) -> bool:
    if len(payload) <= PROBE_BYTES:
        return True
    probe = payload[:PROBE_BYTES]
    return len(zlib.compress(probe, ZLIB_LEVEL)) <= (1 - MIN_SAVING) * len(probe)


def decode(frame: bytes, *, key: bytes, name: str) -> bytes | Rejected:
    """The payload of a frame `encode` wrote under `name` with `key`, or why it is refused."""
    if len(frame) < _HEADER.size:
        return Rejected.MALFORMED
    magic, version, compression, tag = _HEADER.unpack_from(frame)
    if magic != MAGIC or version != FORMAT_VERSION or compression not in (_RAW, _ZLIB):
        return Rejected.MALFORMED
    body = memoryview(frame)[_HEADER.size :]
    if not hmac.compare_digest(tag, _mac(key, name, compression, body)):
        return Rejected.SIGNATURE
    if compression == _RAW:
        return bytes(body)
    try:
        return zlib.decompress(body)
    except zlib.error:  # pragma: no cover - only a frame signed with our key reaches here
        return Rejected.MALFORMED
