"""The Redis history adapter: one list per model (`<namespace>:<kind>:<model>`, kind `robustness` or
`explanations`), newest first, trimmed to `max_records`. Values are JSON (nothing is unpickled). A Redis
outage is UNAVAILABLE for the caller.

The evaluation lease of a model version is `<namespace>:<kind>-lease:<model>:<version>`, taken with
`SET key owner NX PX ttl` (the Redis single-instance lock pattern): of several replicas that find the same
evaluation due, one gets it. Renewal and release check the owner atomically (a Lua script), so a replica
whose lease lapsed never extends or deletes another's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis import Redis

from glassbox.core.errors import Unavailable
from glassbox.core.reasons import Reason
from glassbox.robustness.history import HistoryRecord, HistoryStore, R

RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisHistory(HistoryStore[R]):
    def __init__(
        self,
        url: str,
        namespace: str,
        max_records: int = 1000,
        *,
        timeout_seconds: float = 5.0,
        kind: str = "robustness",
        record_type: type[R] = HistoryRecord,  # type: ignore[assignment]
    ) -> None:
        super().__init__(max_records)
        self.kind, self.record_type = kind, record_type
        self.redis = Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self.namespace = namespace
        self._renew = self.redis.register_script(RENEW)
        self._release = self.redis.register_script(RELEASE)

    @contextmanager
    def _reachable(self, what: str) -> Iterator[None]:
        """A Redis failure inside becomes Unavailable (reason STORE_UNAVAILABLE) naming the store."""
        try:
            yield
        except redis.RedisError as exc:
            raise Unavailable(
                f"the {self.kind} {what} (Redis) is unreachable: {exc}", reason=Reason.STORE_UNAVAILABLE
            ) from exc

    def _key(self, model: str) -> str:
        return f"{self.namespace}:{self.kind}:{model}"

    def _lease_key(self, model: str, version: str) -> str:
        return f"{self.namespace}:{self.kind}-lease:{model}:{version}"

    def append(self, record: R) -> None:
        with self._reachable("history"):
            pipe = self.redis.pipeline()
            pipe.lpush(self._key(record.model), record.to_json())
            pipe.ltrim(self._key(record.model), 0, self.max_records - 1)
            pipe.execute()

    def records(self, model: str, version: str = "", limit: int = 100) -> list[R]:
        with self._reachable("history"):
            raw = self.redis.lrange(self._key(model), 0, -1 if version else limit - 1)
        found = [self.record_type.from_json(item) for item in raw]
        return [r for r in found if not version or r.version == version][:limit]

    def claim(self, model: str, version: str, owner: str, ttl_seconds: float) -> bool:
        with self._reachable("lease"):
            taken = self.redis.set(
                self._lease_key(model, version), owner, nx=True, px=_milliseconds(ttl_seconds)
            )
        return bool(taken)

    def renew(self, model: str, version: str, owner: str, ttl_seconds: float) -> bool:
        with self._reachable("lease"):
            renewed = self._renew(
                keys=[self._lease_key(model, version)], args=[owner, _milliseconds(ttl_seconds)]
            )
        return bool(renewed)

    def release(self, model: str, version: str, owner: str) -> None:
        with self._reachable("lease"):
            self._release(keys=[self._lease_key(model, version)], args=[owner])

    def close(self) -> None:
        self.redis.close()


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))
