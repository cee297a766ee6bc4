"""Job ids: 32 lowercase hex digits. The in-process engine embeds its process's replica tag in the ids
it makes, so a job id that reaches the wrong replica is told apart from an unknown one.

    tag (8 hex) | random (20 hex) | check (4 hex) = the first 4 hex of SHA-256(tag + random)

A random or mistyped id passes the check with probability 1/65536; the Redis engine's ids are plain
UUIDs (every replica resolves them).
"""

from __future__ import annotations

import hashlib
import re
import secrets

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
TAG_HEX = 8
CHECK_HEX = 4


def new_replica_tag() -> str:
    """A random tag for one engine instance (one server process)."""
    return secrets.token_hex(TAG_HEX // 2)


def _check(tag: str, random: str) -> str:
    return hashlib.sha256(f"{tag}{random}".encode()).hexdigest()[:CHECK_HEX]


def tagged_job_id(tag: str) -> str:
    """A new job id carrying `tag`.

    Example:
        >>> job_id = tagged_job_id("0badcafe")
        >>> len(job_id), id_tag(job_id)
        (32, '0badcafe')
    """
    random = secrets.token_hex((32 - TAG_HEX - CHECK_HEX) // 2)
    return f"{tag}{random}{_check(tag, random)}"


def id_tag(job_id: str) -> str | None:
    """The replica tag a job id carries, or None when it carries none (a UUID, a mistyped id)."""
    if not JOB_ID.match(job_id):
        return None
    tag, random, check = job_id[:TAG_HEX], job_id[TAG_HEX:-CHECK_HEX], job_id[-CHECK_HEX:]
    return tag if _check(tag, random) == check else None
