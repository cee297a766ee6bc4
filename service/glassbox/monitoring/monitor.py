"""The explanation monitor: every monitor round (`robustness.check_interval_seconds`) it looks for model
versions whose `[monitoring.explanations]` check is due (a version without a record yet: trigger
`new_version`; `interval_hours` after its last check: `schedule`) and runs it through the compute
scheduler at background priority (the jobs' class), so interactive calls go first, unit by unit. The
check's forward-pass budget is its scheduler estimate, and is logged before it runs.

Replicas sharing a Redis history take the version's lease first (`<namespace>:explanations-lease:...`),
as the robustness monitor does; the others publish the record as gauges when it appears.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from glassbox.config import Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import GlassboxError, ResourceExhausted
from glassbox.models.datasets import LabelledImages
from glassbox.models.repository import ModelRepository, ModelState, ModelVersion
from glassbox.monitoring.checks import Compared, plan, run_check
from glassbox.monitoring.config import ExplanationMonitoring
from glassbox.monitoring.record import BASELINE, PREVIOUS, ExplanationRecord
from glassbox.monitoring.validate import explanation_monitoring
from glassbox.robustness.history import HistoryStore
from glassbox.robustness.rounds import MonitorRounds
from glassbox.serving import ComputeScheduler, Priority

log = logging.getLogger(__name__)

LEASE_MIN_SECONDS = 600.0
"""A check runs to its end inside one monitor round, so its lease must outlast the longest check."""


class ExplanationMonitor(MonitorRounds[ExplanationRecord]):
    """Runs due explanation checks; `tick()` does one round (the thread calls it)."""

    what = "explanation check"

    def __init__(
        self,
        repository: ModelRepository,
        scheduler: ComputeScheduler,
        history: HistoryStore[ExplanationRecord],
        *,
        interval_seconds: float,
        settings: Settings,
        observe: Callable[[ExplanationRecord], None] = lambda _record: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            history,
            interval_seconds=interval_seconds,
            lease_seconds=max(LEASE_MIN_SECONDS, 5 * interval_seconds),
            observe=observe,
        )
        self.repository, self.scheduler = repository, scheduler
        self.settings, self.clock = settings, clock
        self._token = CancellationToken()

    def monitored(self) -> list[tuple[ModelVersion, ExplanationMonitoring]]:
        found = []
        for entry in self.repository.all_entries():
            if entry.state is not ModelState.READY:
                continue
            try:
                config = explanation_monitoring(entry)
            except (TypeError, ValueError) as exc:
                log.error(
                    "model %s version %s: explanation monitoring off: %s", entry.name, entry.version, exc
                )
                continue
            if config is not None:
                found.append((entry, config))
        return found

    def compared(
        self, entry: ModelVersion, config: ExplanationMonitoring
    ) -> tuple[list[Compared], list[str]]:
        """The previous ready version and the pinned baseline (one entry when they are the same), each
        with its latest record on the same set and number of images; and notes on what is missing."""
        ready = [v for v in self.repository.versions(entry.name) if v.state is ModelState.READY]
        names = [v.version for v in ready]
        position = names.index(entry.version)
        relations: dict[str, list[str]] = {}
        if position > 0:
            relations.setdefault(names[position - 1], []).append(PREVIOUS)
        notes = []
        if config.baseline_version and config.baseline_version != entry.version:
            if config.baseline_version in names:
                relations.setdefault(config.baseline_version, []).append(BASELINE)
            else:
                notes.append(f"the baseline version {config.baseline_version!r} is not served: not compared")
        compared = []
        for version, relation in relations.items():
            other = ready[names.index(version)]
            assert other.model is not None
            record = self.history.latest(entry.name, version)
            if record is not None and (record.reference_set, record.images) != (
                config.reference_set,
                self._images(entry, config),
            ):
                record = None
            compared.append(Compared(version, ",".join(relation), other.model, record))
        return compared, notes

    def _images(self, entry: ModelVersion, config: ExplanationMonitoring) -> int:
        return len(self._set(entry, config))

    def _set(self, entry: ModelVersion, config: ExplanationMonitoring) -> LabelledImages:
        full = self.repository.dataset(
            entry.name, config.reference_set, entry.version, max_pixels=self.settings.limits.max_image_pixels
        )
        return full.head(config.images)

    def check(self, entry: ModelVersion, config: ExplanationMonitoring, trigger: str) -> ExplanationRecord:
        """Run one check now (through the scheduler, at background priority) and record it."""
        model = entry.model
        assert model is not None
        images = self._set(entry, config)
        compared, notes = self.compared(entry, config)
        estimate = plan(model, compared, config, len(images), self.settings)
        log.info(
            "explanation check of %s version %s (%s) against %s: budget %d forward passes",
            entry.name,
            entry.version,
            trigger,
            [c.version for c in compared] or "no other version",
            estimate.forward_rows + estimate.backward_rows,
        )
        record = self.scheduler.run(
            lambda: run_check(
                model,
                compared,
                config,
                images,
                self._token,
                self.settings,
                trigger=trigger,
                notes=notes,
            ),
            model=entry.model,
            estimate=estimate,
            priority=Priority.BACKGROUND,
            token=self._token,
            label="monitor/explanations",
        )
        self.history.append(record)
        self._publish((entry.name, entry.version), record)
        return record

    def tick(self) -> None:
        for entry, config in self.monitored():
            if self._stop.is_set():
                return
            key = (entry.name, entry.version)
            try:
                latest = self.history.latest(*key)
            except GlassboxError as exc:
                log.warning("explanation history unavailable: %s", exc)
                return
            self._publish(key, latest)
            trigger = self._trigger(key, latest, config.interval_hours, self.clock())
            if trigger is None:
                continue
            if not self._claim(key, latest):
                continue
            self._attempted[key] = self.clock()
            try:
                self.check(entry, config, trigger)
            except ResourceExhausted as exc:
                del self._attempted[key]  # the scheduler is busy: try again next round
                log.warning("explanation check of %s version %s deferred: %s", *key, exc)
            except GlassboxError as exc:
                log.error("explanation check of %s version %s failed: %s", *key, exc)
            except Exception:
                log.exception("explanation check of %s version %s failed", *key)
            finally:
                self.leases.release(key)

    def stop(self) -> None:
        """Stop the thread; a check in progress is cancelled at its next unit."""
        self._token.cancel()
        super().stop()
