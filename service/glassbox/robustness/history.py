"""The robustness history: one summary record per monitoring evaluation, per model, newest first, so a
drop between versions shows. A port with two adapters, as the cache and the jobs have: in process
(lost on restart; the default) and Redis (`redis_history`, shared by replicas, survives restarts).

The same store keeps the explanation checks' records (`monitoring.record.ExplanationRecord`), in a store
of its own (`record_type`), since both kinds of record share the shape this needs: `model`, `version`,
`job_id` and JSON.

The store also hands out the monitor's evaluation lease, so that of several replicas sharing one Redis
history only one runs a due evaluation; an in-process store serves one replica and grants every claim."""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Generic, Protocol, TypeVar

from glassbox.robustness.report import AttackAccuracy, CorruptionAccuracy


@dataclass(frozen=True)
class HistoryRecord:
    model: str
    version: str
    time: float  # Unix seconds
    reference_set: str
    trigger: str  # "new_version" or "schedule"
    images: int
    clean_accuracy: float
    attacks: tuple[AttackAccuracy, ...]
    corruptions: tuple[CorruptionAccuracy, ...]
    minimal_epsilon_median: float  # +inf possible, NaN when not searched
    warnings: tuple[str, ...]
    job_id: str

    def to_json(self) -> str:
        """JSON with NaN and Infinity as Python writes them (read back by `from_json` only)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> HistoryRecord:
        raw = json.loads(text)
        raw["attacks"] = tuple(AttackAccuracy(**a) for a in raw["attacks"])
        raw["corruptions"] = tuple(CorruptionAccuracy(**c) for c in raw["corruptions"])
        raw["warnings"] = tuple(raw["warnings"])
        return cls(**raw)


class Record(Protocol):
    """What a history keeps: a record of one model version, with an id, written as JSON (read-only
    attributes, so that frozen dataclasses are records)."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def time(self) -> float: ...  # Unix seconds

    @property
    def job_id(self) -> str: ...

    def to_json(self) -> str: ...

    @classmethod
    def from_json(cls, text: str | bytes) -> Any: ...


R = TypeVar("R", bound=Record)


class HistoryStore(ABC, Generic[R]):
    """Append and list records; at most `max_records` are kept per model (the oldest go first)."""

    def __init__(self, max_records: int) -> None:
        self.max_records = max_records

    @abstractmethod
    def append(self, record: R) -> None: ...

    @abstractmethod
    def records(self, model: str, version: str = "", limit: int = 100) -> list[R]:
        """Newest first; only `version`'s when it is given."""

    def latest(self, model: str, version: str) -> R | None:
        found = self.records(model, version, limit=1)
        return found[0] if found else None

    def page(self, model: str, version: str, limit: int, after: str = "") -> tuple[list[R], str]:
        """Up to `limit` records, newest first, starting after the record whose id is `after` (a page
        token; "" = from the newest). Returns the page and the next token ("" on the last page). Records
        appended meanwhile do not shift a page, as offsets would; a token whose record has since been
        trimmed away is ValueError."""
        found = self.records(model, version, limit=self.max_records)
        start = 0
        if after:
            ids = [record.job_id for record in found]
            if after not in ids:
                raise ValueError("the page token is unknown or has expired; start from the first page")
            start = ids.index(after) + 1
        page = found[start : start + limit]
        more = start + limit < len(found)
        return page, (page[-1].job_id if more and page else "")

    def claim(self, model: str, version: str, owner: str, ttl_seconds: float) -> bool:
        """Take the lease on evaluating a model version for `ttl_seconds`; False when another owner holds
        it. The in-process store serves a single replica, whose monitor never runs two evaluations of a
        version at once, so it grants every claim."""
        return True

    def renew(self, model: str, version: str, owner: str, ttl_seconds: float) -> bool:
        """Extend `owner`'s lease to `ttl_seconds` from now; False when it lapsed or another owner took it."""
        return True

    def release(self, model: str, version: str, owner: str) -> None:
        """Give the lease back if `owner` still holds it."""

    def close(self) -> None:
        """Release connections."""


class MemoryHistory(HistoryStore[R]):
    def __init__(self, max_records: int = 1000) -> None:
        super().__init__(max_records)
        self._lock = threading.Lock()
        self._records: dict[str, deque[R]] = {}

    def append(self, record: R) -> None:
        with self._lock:
            self._records.setdefault(record.model, deque(maxlen=self.max_records)).appendleft(record)

    def records(self, model: str, version: str = "", limit: int = 100) -> list[R]:
        with self._lock:
            found = [r for r in self._records.get(model, ()) if not version or r.version == version]
        return found[:limit]
