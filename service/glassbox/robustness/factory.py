"""Build the history stores the settings ask for: Redis when `robustness.redis_url` (or else
`jobs.redis_url`) is set, in-process otherwise. Robustness evaluations and explanation checks keep
separate histories (`<namespace>:robustness:<model>`, `<namespace>:explanations:<model>`)."""

from __future__ import annotations

from typing import Any

from glassbox.config import Settings
from glassbox.robustness.history import HistoryRecord, HistoryStore, MemoryHistory


def build_history(
    settings: Settings, *, kind: str = "robustness", record_type: Any = HistoryRecord
) -> HistoryStore:
    url = settings.robustness.redis_url or settings.jobs.redis_url
    limit = settings.robustness.max_records_per_model
    if url:
        from glassbox.robustness.redis_history import RedisHistory

        return RedisHistory(url, settings.robustness.namespace, limit, kind=kind, record_type=record_type)
    return MemoryHistory(limit)
