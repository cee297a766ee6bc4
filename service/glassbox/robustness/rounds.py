"""What the robustness monitor and the explanation monitor share: a daemon thread that runs `tick()`
every `interval_seconds`, the per-version lease (`lease.VersionLeases`) and the publication of each
version's newest history record as gauges, once per record, whichever replica wrote it."""

from __future__ import annotations

import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic

from glassbox.core.errors import GlassboxError
from glassbox.models.repository import ModelVersion
from glassbox.robustness.history import HistoryStore, R
from glassbox.robustness.lease import Key, VersionLeases

log = logging.getLogger(__name__)


class MonitorRounds(ABC, Generic[R]):
    """A monitor's thread, lease and gauge publication; subclasses say what is monitored and do a round."""

    what = "monitor"
    """Names the monitor in logs and thread names ("robustness evaluation", "explanation check")."""

    def __init__(
        self,
        history: HistoryStore[R],
        *,
        interval_seconds: float,
        lease_seconds: float,
        observe: Callable[[R], None],
    ) -> None:
        self.history, self.interval_seconds, self.observe = history, interval_seconds, observe
        self.leases = VersionLeases(history, lease_seconds, self.what)
        self._observed: dict[Key, str] = {}  # (model, version) → id of the published record
        self._attempted: dict[Key, float] = {}  # (model, version) → when this monitor last started one
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def monitored(self) -> list[tuple[ModelVersion, Any]]:
        """The ready versions this monitor watches, with their configuration."""

    @abstractmethod
    def tick(self) -> None:
        """One round."""

    def publish_latest(self) -> None:
        """Gauges from the history's latest record of every monitored version (after a restart)."""
        for entry, _config in self.monitored():
            try:
                latest = self.history.latest(entry.name, entry.version)
            except GlassboxError as exc:
                log.warning("%s history unavailable: %s", self.what, exc)
                return
            self._publish((entry.name, entry.version), latest)

    def _publish(self, key: Key, latest: R | None) -> None:
        """Gauges from `latest` unless already published (records of other replicas arrive this way)."""
        if latest is not None and self._observed.get(key) != latest.job_id:
            self._observed[key] = latest.job_id
            self.observe(latest)

    def _trigger(self, key: Key, latest: R | None, interval_hours: float, now: float) -> str | None:
        """Why the version is due: "new_version" (no record, never tried), "schedule" (`interval_hours`
        since its last record or try; 0 = never), or None."""
        if latest is None and key not in self._attempted:
            return "new_version"
        last = max(latest.time if latest else -math.inf, self._attempted.get(key, -math.inf))
        if interval_hours > 0 and now - last >= interval_hours * 3600:
            return "schedule"
        return None

    def _claim(self, key: Key, latest: R | None) -> bool:
        """Take the version's lease; publish instead when another replica recorded since `latest`."""
        claimed, newest = self.leases.claim(key, latest)
        if not claimed:
            self._publish(key, newest)
        return claimed

    def start(self) -> MonitorRounds[R]:
        self.publish_latest()
        name = f"glassbox-{self.what.replace(' ', '-')}-monitor"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("%s monitor round failed", self.what)
            self._stop.wait(self.interval_seconds)

    def stop(self) -> None:
        """Stop the thread (waiting up to 10 s for a round in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
