"""Choose the job engine from the settings: Redis (RQ) when `jobs.redis_url` is set, else in-process."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from glassbox.config import JobSettings, Settings
from glassbox.jobs.engine import JobEngine, JobFinished, QueueDepth
from glassbox.jobs.kinds import JobKind
from glassbox.jobs.memory import JobRunner, run_in_place
from glassbox.models.repository import ModelRepository

log = logging.getLogger(__name__)


def build_engine(
    settings: JobSettings,
    repository: ModelRepository,
    kinds: Iterable[JobKind[Any, Any]],
    *,
    on_finished: JobFinished | None = None,
    on_queue_depth: QueueDepth | None = None,
    run_job: JobRunner = run_in_place,
    server_settings: Settings | None = None,
) -> JobEngine:
    """Start the engine the settings ask for, accepting jobs of `kinds` (the composition root's).

    With Redis, jobs finish in `glassbox worker` processes, which report `on_finished` themselves; the
    in-process engine runs each job's attempt through `run_job` (the server's compute scheduler).
    `server_settings` are the settings jobs are validated and run with (the server's).
    """
    kinds = tuple(kinds)
    names = sorted(kind.name for kind in kinds)
    if settings.redis_url:
        from glassbox.jobs.redis_engine import RedisJobEngine

        log.info("jobs: Redis engine, namespace %r, kinds %s", settings.namespace, names)
        return RedisJobEngine(
            settings, repository, kinds=kinds, on_queue_depth=on_queue_depth, server_settings=server_settings
        )
    from glassbox.jobs.memory import InProcessEngine

    log.info("jobs: in-process engine, %d worker threads, kinds %s", settings.worker_threads, names)
    return InProcessEngine(
        settings,
        repository,
        kinds=kinds,
        on_finished=on_finished,
        on_queue_depth=on_queue_depth,
        run_job=run_job,
        server_settings=server_settings,
    )
