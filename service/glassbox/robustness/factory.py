"""Build the history store the settings ask for: Redis when `robustness.redis_url` (or else
`jobs.redis_url`) is set, in-process otherwise."""

from __future__ import annotations

from glassbox.config import Settings
from glassbox.robustness.history import HistoryStore, MemoryHistory


def build_history(settings: Settings) -> HistoryStore:
    url = settings.robustness.redis_url or settings.jobs.redis_url
    limit = settings.robustness.max_records_per_model
    if url:
        from glassbox.robustness.redis_history import RedisHistory

        return RedisHistory(url, settings.robustness.namespace, limit)
    return MemoryHistory(limit)
