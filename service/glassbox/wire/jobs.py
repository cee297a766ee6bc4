"""A job kind whose spec and result are protobuf messages, as the protocol-agnostic engine sees it
(`jobs.kinds.JobKind`): the spec encoded and decoded as proto bytes, its `model` and `seed` read for
the engine, and the core run's report translated into the result message."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from google.protobuf.message import DecodeError, Message

from glassbox.config import Settings
from glassbox.core.errors import InvalidArgument
from glassbox.jobs.kinds import JobContext, JobKind, SpecIdentity
from glassbox.models.repository import ModelRepository
from glassbox.wire.fields import JobSpec

REQUIRED_SPEC_FIELDS = ("model", "version", "seed")
"""Every spec message has `string model`, `string version` (empty = newest) and an integer `seed`."""

SpecMessage = TypeVar("SpecMessage", bound=Message)
CoreSpec = TypeVar("CoreSpec")
Report = TypeVar("Report")


def proto_kind(
    name: str,
    spec_type: type[SpecMessage],
    validate: Callable[[SpecMessage, ModelRepository, Settings], CoreSpec],
    run: Callable[[CoreSpec, JobContext], Report],
    result: Callable[[CoreSpec, Report], Message],
) -> JobKind[SpecMessage, CoreSpec]:
    """The kind `name`: `validate` translates and checks a `spec_type` message, `run` does the work and
    returns a core report, `result` turns the report into the kind's result message."""
    fields = spec_type.DESCRIPTOR.fields_by_name
    missing = [field for field in REQUIRED_SPEC_FIELDS if field not in fields]
    if missing:
        raise TypeError(f"job kind {name!r}: {spec_type.__name__} lacks the fields {missing}")

    def encode(spec: SpecMessage) -> bytes:
        if not isinstance(spec, spec_type):
            raise TypeError(f"job kind {name!r} takes a {spec_type.__name__}, not a {type(spec).__name__}")
        return spec.SerializeToString(deterministic=True)

    def decode(data: bytes) -> SpecMessage:
        try:
            return spec_type.FromString(data)
        except DecodeError as exc:
            raise InvalidArgument(f"stored spec does not parse: {exc}", field=name) from exc

    def identity(spec: SpecMessage) -> SpecIdentity:
        fields = cast(JobSpec, spec)  # the descriptor check above guarantees model and seed
        return SpecIdentity(model=fields.model, seed=int(fields.seed))

    def run_to_bytes(job: CoreSpec, ctx: JobContext) -> bytes:
        return result(job, run(job, ctx)).SerializeToString()

    return JobKind(
        name=name, encode=encode, decode=decode, identity=identity, validate=validate, run=run_to_bytes
    )
