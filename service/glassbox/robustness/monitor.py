"""Robustness monitoring: a model version whose model.toml has a [monitoring] section is evaluated on its
reference set when it is first seen without history (at start-up, or when `models.poller` loads a new
version folder while the server runs), then every
`interval_hours`. Each evaluation is an ordinary `robustness_evaluation` job (visible with ListJobs);
when it succeeds, its summary goes into the history and the Prometheus gauges.

Replicas sharing a Redis history would each find the same evaluation due, so a monitor first claims the
version's lease from the history store (`HistoryStore.claim`, Redis `SET NX PX`): one replica runs the
job and renews the lease every round until it finishes; the others skip that version while the lease is
held, and take over only if it lapses or is released without a new record (the job failed, or its
replica died). Every replica publishes the newest record of each version as gauges, whichever replica
wrote it. The keys of the [monitoring] section: `monitoring_config`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from glassbox.core.errors import GlassboxError
from glassbox.jobs.engine import JobEngine
from glassbox.jobs.records import JobState
from glassbox.models.repository import ModelRepository, ModelState, ModelVersion
from glassbox.robustness.history import HistoryRecord, HistoryStore
from glassbox.robustness.monitoring_config import MonitoringConfig, ScheduledEvaluation, monitoring_config
from glassbox.robustness.rounds import MonitorRounds

log = logging.getLogger(__name__)

Observe = Callable[[HistoryRecord], None]
"""Metrics hook: the latest record of a model version."""

LEASE_ROUNDS = 5
"""The evaluation lease lasts this many monitor rounds (renewed every round), at least LEASE_MIN_SECONDS."""
LEASE_MIN_SECONDS = 60.0


@dataclass(frozen=True)
class EvaluationJobs:
    """How the monitor's evaluations travel as jobs, whose specs and results the job engine carries in
    the wire format: supplied by the composition root (`wire.kinds.robustness.MONITORING_JOBS`)."""

    kind: str
    """The job kind that evaluates robustness."""
    spec: Callable[[ScheduledEvaluation], Any]
    """The job spec of a scheduled evaluation."""
    record: Callable[..., HistoryRecord]
    """(result bytes, *, time, reference_set, trigger, job_id) → the summary the history keeps."""


class RobustnessMonitor(MonitorRounds[HistoryRecord]):
    """Submits due evaluations and records finished ones; `tick()` does one round (the thread calls it)."""

    what = "robustness evaluation"

    def __init__(
        self,
        repository: ModelRepository,
        jobs: JobEngine,
        history: HistoryStore,
        *,
        evaluations: EvaluationJobs,
        interval_seconds: float,
        observe: Observe = lambda _record: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            history,
            interval_seconds=interval_seconds,
            lease_seconds=max(LEASE_MIN_SECONDS, LEASE_ROUNDS * interval_seconds),
            observe=observe,
        )
        self.repository, self.jobs, self.evaluations, self.clock = repository, jobs, evaluations, clock
        self._pending: dict[
            tuple[str, str], tuple[str, str, str]
        ] = {}  # (model, version) → (job, set, trigger)

    def monitored(self) -> list[tuple[ModelVersion, MonitoringConfig]]:
        found = []
        for entry in self.repository.all_entries():
            config = monitoring_config(entry) if entry.state is ModelState.READY else None
            if config is not None:
                found.append((entry, config))
        return found

    def tick(self) -> None:
        self._collect()
        now = self.clock()
        for entry, config in self.monitored():
            key = (entry.name, entry.version)
            if key in self._pending:
                continue
            try:
                latest = self.history.latest(*key)
            except GlassboxError as exc:
                log.warning("robustness history unavailable: %s", exc)
                return
            self._publish(key, latest)
            trigger = self._trigger(key, latest, config.interval_hours, now)
            if trigger is None:
                continue
            if not self._claim(key, latest):
                continue
            self._attempted[key] = now
            try:
                record = self.jobs.submit(
                    self.evaluations.kind, self.evaluations.spec(config.evaluation(entry))
                )
            except GlassboxError as exc:
                log.error("robustness evaluation of %s version %s not submitted: %s", *key, exc)
                self.leases.release(key)
                continue
            log.info(
                "robustness evaluation of %s version %s submitted (%s): job %s", *key, trigger, record.id
            )
            self._pending[key] = (record.id, config.reference_set, trigger)

    def _collect(self) -> None:
        for key, (job_id, reference_set, trigger) in list(self._pending.items()):
            try:
                job = self.jobs.get(job_id)
            except GlassboxError as exc:
                log.warning("robustness job %s of %s version %s: %s", job_id, *key, exc)
                del self._pending[key]
                self.leases.release(key)
                continue
            if not job.state.finished:
                self.leases.renew(key)
                continue
            del self._pending[key]
            if job.state is not JobState.SUCCEEDED or job.result is None:
                log.error("robustness evaluation of %s version %s %s: %s", *key, job.state.value, job.error)
                self.leases.release(key)
                continue
            record = self.evaluations.record(
                job.result,
                time=job.finished_at or self.clock(),
                reference_set=reference_set,
                trigger=trigger,
                job_id=job_id,
            )
            try:
                self.history.append(record)
            finally:
                self.leases.release(key)
            self._publish(key, record)

    def wait_idle(self, timeout: float) -> bool:
        """Tick until nothing is pending (tests); True when idle within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        self.tick()
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.2)
            self.tick()
        return not self._pending

    def stop(self) -> None:
        """Stop the thread and give back the leases of unfinished evaluations (another replica may then
        take them over)."""
        super().stop()
        for key in list(self._pending):
            self.leases.release(key)
