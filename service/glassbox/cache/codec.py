"""Cache values on the wire: a framed, checksummed, optionally compressed byte string.

Frame: magic `GBXC` | format version (1 byte) | compression (1 byte) | CRC-32 of the payload (4 bytes,
big-endian) | body. Anything that does not parse, has another version, or fails the checksum decodes
to None, so a corrupt value, a value written by another program or by an older Glassbox is a miss.
"""

from __future__ import annotations

import struct
import zlib

MAGIC = b"GBXC"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">4sBBI")
_RAW, _ZLIB = 0, 1
COMPRESS_MIN_BYTES = 512
"""Smaller payloads are stored raw: compression would not pay for its header and time."""
ZLIB_LEVEL = 1
"""Fast: attribution maps are float32 noise-like data where higher levels gain little and cost a lot."""
PROBE_BYTES = 64 * 1024
"""A larger payload is compressed only if its first PROBE_BYTES shrink by MIN_SAVING: a float32 map of a
224² image (600 kB) barely compresses, and zlib would add ~4.5 ms to every miss for a few percent."""
MIN_SAVING = 0.1


def encode(payload: bytes) -> bytes:
    """Frame `payload`, compressing it when that makes it smaller."""
    checksum = zlib.crc32(payload)
    if len(payload) >= COMPRESS_MIN_BYTES and _compressible(payload):
        compressed = zlib.compress(payload, ZLIB_LEVEL)
        if len(compressed) < len(payload):
            return _HEADER.pack(MAGIC, FORMAT_VERSION, _ZLIB, checksum) + compressed
    return _HEADER.pack(MAGIC, FORMAT_VERSION, _RAW, checksum) + payload


def _compressible(payload: bytes) -> bool:
    if len(payload) <= PROBE_BYTES:
        return True
    probe = payload[:PROBE_BYTES]
    return len(zlib.compress(probe, ZLIB_LEVEL)) <= (1 - MIN_SAVING) * len(probe)


def decode(frame: bytes) -> bytes | None:
    """The payload of a frame written by `encode`, or None for anything else."""
    if len(frame) < _HEADER.size:
        return None
    magic, version, compression, checksum = _HEADER.unpack_from(frame)
    if magic != MAGIC or version != FORMAT_VERSION:
        return None
    body = memoryview(frame)[_HEADER.size :]
    if compression == _RAW:
        payload = bytes(body)
    elif compression == _ZLIB:
        try:
            payload = zlib.decompress(body)
        except zlib.error:
            return None
    else:
        return None
    return payload if zlib.crc32(payload) == checksum else None
