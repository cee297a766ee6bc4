"""Job state in Redis: one hash per job, an event stream per job for watchers, an index for listing.

Keys (all under the namespace, all with the result TTL once the job is finished):

    {ns}:job:{id}           hash: the record's fields, plus `spec` and `result` (proto bytes)
    {ns}:job:{id}:events    stream: a full snapshot of the record (without spec/result) per change,
                            plus the `preview_id` of a preview when one was rendered; ~EVENT_HISTORY
    {ns}:job:{id}:previews  stream: the PNG previews, ~PREVIEW_HISTORY (they are large: a watcher that
                            falls further behind gets the updates without their previews)
    {ns}:job:{id}:watchers  sorted set: "{watcher}:{preview interval}" scored by its expiry (Redis time)
    {ns}:jobs               sorted set: every job id scored by its creation time (listing, newest first)
    {ns}:request:{sha256}   string "{job id} {spec digest}": a caller's SubmitJob request_id, set with the
                            job in one transaction; TTL max_run_seconds + result_ttl_seconds

Every change goes through one Lua script that checks the job's state (and attempt) first, so a
worker that lost its job (its attempt was retried elsewhere) can never overwrite the new attempt.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

from redis import Redis
from redis.client import Pipeline
from redis.typing import EncodableT, FieldT

from glassbox.jobs.kinds import Progress
from glassbox.jobs.records import JobError, JobRecord, JobState, RequestClaim

EVENT_HISTORY = 256
PREVIEW_HISTORY = 16
WATCHER_LEASE_SECONDS = 5.0

LIGHT_FIELDS = (
    "kind", "model", "seed", "state", "created_at", "max_attempts", "attempt", "started_at", "finished_at",
    "step", "total", "objective", "message", "error_type", "error_message", "error_reason", "error_field",
    "error_metadata", "cancel_requested", "owner", "request_id",
)  # fmt: skip

_GUARDED_WRITE = """
-- KEYS: job hash, events stream, watchers zset, previews stream
-- ARGV: allowed states ("" = any, else "|a|b|"), attempt ("" = any), ttl ms ("0" = keep),
--       preview ("" = none), then field/value pairs to set
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0, '', 0, {}} end
if ARGV[1] ~= '' and not string.find(ARGV[1], '|' .. state .. '|', 1, true) then return {0, state, 0, {}} end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[2] then return {0, state, 0, {}} end
if #ARGV > 4 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end
local names = {%s}
local values = redis.call('HMGET', KEYS[1], unpack(names))
local entry = {}
for i, name in ipairs(names) do
  table.insert(entry, name)
  table.insert(entry, values[i] or '')
end
if ARGV[4] ~= '' then
  table.insert(entry, 'preview_id')
  table.insert(entry, redis.call('XADD', KEYS[4], 'MAXLEN', '~', '%d', '*', 'png', ARGV[4]))
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '%d', '*', unpack(entry))
if ARGV[3] ~= '0' then
  for i = 1, 4 do
    if i ~= 3 then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
  end
end
local now = redis.call('TIME')
local watchers = redis.call('ZRANGEBYSCORE', KEYS[3], now[1] + now[2] / 1000000, '+inf')
local cancel = redis.call('HGET', KEYS[1], 'cancel_requested') == '1' and 1 or 0
return {1, state, cancel, watchers}
""" % (", ".join(f"'{name}'" for name in LIGHT_FIELDS), PREVIEW_HISTORY, EVENT_HISTORY)  # noqa: UP031

_REGISTER_WATCHER = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], now[1] + now[2] / 1000000 + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now[1] + now[2] / 1000000)
redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(ARGV[2]) * 2000))
return 1
"""


StreamEntry = tuple[bytes, dict[bytes, bytes]]
"""A stream entry as read: its id and its fields."""


class BinaryReads(Protocol):
    """The store's reads, typed by the replies its client gives: created without `decode_responses`
    (`redis_engine.connect`), it answers bytes, in redis-py's default (legacy) reply shapes. redis-py
    types each reply as a union over both settings (`bytes | str`, and the RESP3 shapes)."""

    def get(self, name: str) -> bytes | None: ...

    def hget(self, name: str, key: str) -> bytes | None: ...

    def hgetall(self, name: str) -> dict[bytes, bytes]: ...

    def xread(self, streams: dict[str, bytes], *, block: int) -> list[tuple[bytes, list[StreamEntry]]]: ...

    def xrange(self, name: str, min: bytes, max: bytes, *, count: int) -> list[StreamEntry]: ...

    def zrange(self, name: str, start: int, end: int) -> list[bytes]: ...

    def zrevrangebyscore(self, name: str, max: float, min: str, *, start: int, num: int) -> list[bytes]: ...


def binary(client: Redis | Pipeline) -> BinaryReads:
    """`client`'s reads typed as the bytes they return (see `BinaryReads`)."""
    return cast(BinaryReads, client)


def _time(value: float | None) -> str:
    return "" if value is None else repr(value)


def _parse_time(value: str) -> float | None:
    return float(value) if value else None


def record_fields(record: JobRecord) -> dict[str, str]:
    """The light fields of a record (everything but spec and result) as stored."""
    return {
        "kind": record.kind,
        "model": record.model,
        "seed": str(record.seed),
        "state": record.state.value,
        "created_at": _time(record.created_at),
        "max_attempts": str(record.max_attempts),
        "attempt": str(record.attempt),
        "started_at": _time(record.started_at),
        "finished_at": _time(record.finished_at),
        **progress_fields(record.progress),
        **error_fields(record.error),
        "cancel_requested": "1" if record.cancel_requested else "0",
        "owner": record.owner,
        "request_id": record.request_id,
    }


def progress_fields(progress: Progress) -> dict[str, str]:
    return {
        "step": str(progress.step),
        "total": str(progress.total),
        "objective": repr(float(progress.objective)),
        "message": progress.message,
    }


def error_fields(error: JobError | None) -> dict[str, str]:
    if error is None:
        return dict.fromkeys(
            ("error_type", "error_message", "error_reason", "error_field", "error_metadata"), ""
        )
    return {
        "error_type": error.type,
        "error_message": error.message,
        "error_reason": error.reason,
        "error_field": error.field,
        "error_metadata": json.dumps(error.metadata, sort_keys=True) if error.metadata else "",
    }


def decode_record(job_id: str, raw: dict[bytes, bytes], result: bytes | None = None) -> JobRecord:
    """A record from stored fields (bytes keys and values, as the client returns them)."""
    fields = {
        key.decode(): value for key, value in raw.items() if key not in (b"spec", b"result", b"preview_id")
    }
    text = {key: value.decode() for key, value in fields.items()}
    error = None
    if text.get("error_type"):
        metadata = json.loads(text["error_metadata"]) if text.get("error_metadata") else {}
        reason, field = text.get("error_reason", ""), text.get("error_field", "")
        error = JobError(text["error_type"], text["error_message"], reason, field, metadata)
    return JobRecord(
        id=job_id,
        kind=text["kind"],
        model=text["model"],
        seed=int(text["seed"]),
        state=JobState(text["state"]),
        created_at=float(text["created_at"]),
        max_attempts=int(text["max_attempts"]),
        attempt=int(text["attempt"]),
        started_at=_parse_time(text["started_at"]),
        finished_at=_parse_time(text["finished_at"]),
        progress=Progress(
            step=int(text["step"]),
            total=int(text["total"]),
            objective=float(text.get("objective") or math.nan),
            message=text["message"],
        ),
        error=error,
        result=result,
        cancel_requested=text["cancel_requested"] == "1",
        owner=text.get("owner", ""),
        request_id=text.get("request_id", ""),
    )


class RedisJobStore:
    """Reads and guarded writes of job state under one namespace."""

    def __init__(self, connection: Redis, namespace: str) -> None:
        self.redis = connection
        self.namespace = namespace
        self.index_key = f"{namespace}:jobs"
        self._guarded_write = connection.register_script(_GUARDED_WRITE)
        self._register_watcher = connection.register_script(_REGISTER_WATCHER)

    def key(self, job_id: str) -> str:
        return f"{self.namespace}:job:{job_id}"

    def events_key(self, job_id: str) -> str:
        return f"{self.key(job_id)}:events"

    def watchers_key(self, job_id: str) -> str:
        return f"{self.key(job_id)}:watchers"

    def previews_key(self, job_id: str) -> str:
        return f"{self.key(job_id)}:previews"

    def create(self, pipe: Pipeline, record: JobRecord, spec: bytes) -> None:
        """Store a new job and index it (inside the caller's transaction)."""
        stored: dict[FieldT, EncodableT] = dict(record_fields(record).items())  # typed as hset takes it
        stored["spec"] = spec
        pipe.hset(self.key(record.id), mapping=stored)
        pipe.zadd(self.index_key, {record.id: record.created_at})

    def request_key(self, owner: str, request_id: str) -> str:
        """The key binding one caller's request_id to its job (hashed: owners and ids are free text)."""
        digest = hashlib.sha256(f"{owner}\0{request_id}".encode()).hexdigest()
        return f"{self.namespace}:request:{digest}"

    def claim(self, client: Redis | Pipeline, owner: str, request_id: str) -> RequestClaim | None:
        """The live job bound to a request_id (None when unbound, or its job has expired)."""
        value = binary(client).get(self.request_key(owner, request_id))
        if value is None:
            return None
        job_id, digest = value.decode().split(" ", 1)
        if not client.exists(self.key(job_id)):
            return None
        return RequestClaim(job_id, digest)

    def load(self, job_id: str) -> JobRecord | None:
        raw = binary(self.redis).hgetall(self.key(job_id))
        return decode_record(job_id, raw, raw.get(b"result")) if raw else None

    def load_spec(self, job_id: str) -> bytes | None:
        return binary(self.redis).hget(self.key(job_id), "spec")

    def load_light(self, job_ids: list[str]) -> list[JobRecord | None]:
        """Records without spec or result, for listing; None where a job has expired."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(self.key(job_id), LIGHT_FIELDS)
            rows = pipe.execute()
        return [
            decode_record(
                job_id, {name.encode(): value for name, value in zip(LIGHT_FIELDS, row, strict=True)}
            )
            if row[0] is not None
            else None
            for job_id, row in zip(job_ids, rows, strict=True)
        ]

    def write(
        self,
        job_id: str,
        fields: Mapping[str, str | bytes],
        *,
        states: Iterable[JobState] = (),
        attempt: int | None = None,
        ttl_seconds: float = 0.0,
        preview: bytes | None = None,
    ) -> tuple[bool, JobState | None, bool, list[int]]:
        """Set `fields` and publish a snapshot event, only if the job is in one of `states` (any if
        empty) at `attempt` (any if None). Returns (written, state before, cancel requested, the live
        watchers' preview intervals)."""
        allowed = "|" + "|".join(state.value for state in states) + "|" if states else ""
        args: list[Any] = [
            allowed,
            "" if attempt is None else str(attempt),
            str(math.ceil(ttl_seconds * 1000)),
        ]
        args.append(preview or b"")
        for name, value in fields.items():
            args.extend((name, value))
        keys = [
            self.key(job_id),
            self.events_key(job_id),
            self.watchers_key(job_id),
            self.previews_key(job_id),
        ]
        written, state, cancel, watchers = self._guarded_write(keys=keys, args=args)
        intervals = [int(member.rsplit(b":", 1)[1]) for member in watchers]
        return bool(written), JobState(state.decode()) if state else None, bool(cancel), intervals

    def register_watcher(self, job_id: str, watcher: str, preview_every_steps: int) -> None:
        """Announce (or renew) a watcher's preview interval for WATCHER_LEASE_SECONDS."""
        member = f"{watcher}:{preview_every_steps}"
        self._register_watcher(keys=[self.watchers_key(job_id)], args=[member, WATCHER_LEASE_SECONDS])

    def unregister_watcher(self, job_id: str, watcher: str, preview_every_steps: int) -> None:
        self.redis.zrem(self.watchers_key(job_id), f"{watcher}:{preview_every_steps}")

    def snapshot(self, job_id: str) -> tuple[JobRecord | None, bytes]:
        """The record and the id of the last event, read atomically (events after it are news)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.key(job_id))
            pipe.xrevrange(self.events_key(job_id), count=1)
            raw, last = pipe.execute()
        record = decode_record(job_id, raw, raw.get(b"result")) if raw else None
        return record, last[0][0] if last else b"0-0"

    def events(
        self, job_id: str, after: bytes, block_seconds: float
    ) -> list[tuple[bytes, JobRecord, bytes | None]]:
        """Snapshots published after event id `after` (waiting up to `block_seconds` for the first),
        each with the id of its preview, if it has one."""
        block = max(1, int(block_seconds * 1000))
        reply = binary(self.redis).xread({self.events_key(job_id): after}, block=block)
        out = []
        for _stream, entries in reply or []:
            for event_id, fields in entries:
                out.append((event_id, decode_record(job_id, fields), fields.get(b"preview_id") or None))
        return out

    def load_preview(self, job_id: str, preview_id: bytes) -> bytes | None:
        """A preview PNG by id; None once it was trimmed away."""
        entries = binary(self.redis).xrange(self.previews_key(job_id), preview_id, preview_id, count=1)
        return entries[0][1][b"png"] if entries else None

    def load_result(self, job_id: str) -> bytes | None:
        return binary(self.redis).hget(self.key(job_id), "result")

    def ids_created_before(self, before: float, offset: int, count: int) -> list[str]:
        """Job ids created at or before `before` (Unix seconds), newest first, `count` from `offset`.
        Jobs created meanwhile shift later offsets down, so a caller may see an id twice, never miss one."""
        rows = binary(self.redis).zrevrangebyscore(self.index_key, before, "-inf", start=offset, num=count)
        return [member.decode() for member in rows]

    def prune_index(self, oldest: int = 100) -> None:
        """Drop expired jobs among the `oldest` indexed ones (jobs expire roughly in creation order)."""
        ids = [member.decode() for member in binary(self.redis).zrange(self.index_key, 0, oldest - 1)]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.exists(self.key(job_id))
            alive = pipe.execute()
        self.forget([job_id for job_id, exists in zip(ids, alive, strict=True) if not exists])

    def forget(self, job_ids: list[str]) -> None:
        """Drop expired jobs from the index."""
        if job_ids:
            self.redis.zrem(self.index_key, *job_ids)
