"""The per-version lease both monitors take before they run a due check (robustness evaluations and
explanation checks), so that of several replicas sharing one Redis history only one runs it. The lease
lives in the history store (`HistoryStore.claim`, Redis `SET NX PX`); this wraps it with the owner id of
this process and the re-read that closes the race with a replica that just finished."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Generic

from glassbox.core.errors import GlassboxError
from glassbox.robustness.history import HistoryStore, R

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(model, version)"""


class VersionLeases(Generic[R]):
    """Claim, renew and release the lease of model versions in `history` as one owner."""

    def __init__(self, history: HistoryStore[R], seconds: float, what: str) -> None:
        self.history, self.seconds, self.what = history, seconds, what
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    def claim(self, key: Key, latest: R | None) -> tuple[bool, R | None]:
        """Take the version's lease; then check that no replica recorded anything since `latest` was read
        (it may have finished and released the lease in between). Returns (claimed, the newest record):
        when another replica recorded since, the lease is given back and its record returned."""
        try:
            if not self.history.claim(*key, self.owner, self.seconds):
                log.debug("%s of %s version %s runs on another replica", self.what, *key)
                return False, None
            newest = self.history.latest(*key)
        except GlassboxError as exc:
            log.warning("%s lease unavailable: %s", self.what, exc)
            return False, None
        if (newest and newest.job_id) != (latest and latest.job_id):
            self.release(key)
            return False, newest
        return True, newest

    def renew(self, key: Key) -> None:
        try:
            if not self.history.renew(*key, self.owner, self.seconds):
                log.warning(
                    "%s lease of %s version %s lapsed: another replica may run it too", self.what, *key
                )
        except GlassboxError as exc:
            log.warning("%s lease of %s version %s not renewed: %s", self.what, *key, exc)

    def release(self, key: Key) -> None:
        try:
            self.history.release(*key, self.owner)
        except GlassboxError as exc:
            log.warning("%s lease of %s version %s not released: %s", self.what, *key, exc)
