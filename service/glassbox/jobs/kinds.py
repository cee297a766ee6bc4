"""Job kinds: the contract between the job engines and the long-running work they execute.

The engines know no wire format: a kind gives them hooks on bytes and on core objects, and the
composition root (`server.app`, `glassbox worker`) gives each engine the kinds it serves (`JobKinds`);
the wire layer builds them (`wire.kinds.job_kinds()`: proto specs and results ↔ core). A kind is known
under the name of its member in `SubmitJobRequest.spec` (the same name is its member in `Job.result`),
with

- `encode(spec) -> bytes` / `decode(bytes) -> spec`: the spec as it is queued and stored, and back
  (`encode` is deterministic: the same spec gives the same bytes, which `request_id` compares; `decode`
  raises InvalidArgument naming the kind when stored bytes do not parse). A distributed worker gets
  the spec as these bytes;
- `identity(spec) -> SpecIdentity`: the model the job runs on (jobs are listed by model) and its seed;
- `validate(spec, repository, settings) -> core spec`: checks the request against the server's
  settings (`settings.jobs.limits`, `settings.limits`, `settings.attribution`: the operator's, never
  the embedded defaults) and translates it to a core object,
  raising `core.errors.InvalidArgument` / `FailedPrecondition` / `NotFound` with `field=` naming the
  field (relative to the spec, e.g. `field="steps"`; the servicer prefixes the oneof name). It runs
  on the server *before* anything is queued, and again in the worker that executes the job (which
  may hold a different model repository);
- `run(core_spec, ctx) -> result bytes`: does the work. It must use `ctx.seed` / `ctx.generator()`
  for every random draw (jobs are deterministic given a seed; the global torch RNG is shared by
  concurrent jobs), run on `ctx.device`, and call `ctx.report(...)` once per optimisation step.
  `report` raises `core.errors.Cancelled` when the job was cancelled, so a cancelled job stops within
  one step; `run` lets that exception propagate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

import torch

from glassbox.config import Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import InvalidArgument
from glassbox.models.repository import ModelRepository

Spec = TypeVar("Spec")
CoreSpec = TypeVar("CoreSpec")


@dataclass(frozen=True)
class Progress:
    """How far a job is: `step` of `total` (0 ≤ step ≤ total), the current objective value if the
    kind has one (NaN otherwise), and a short human-readable message."""

    step: int = 0
    total: int = 0
    objective: float = math.nan
    message: str = ""


@dataclass
class JobContext:
    """What a running job gets from the engine that runs it.

    `publish(progress, preview_png)` and `preview_due(step)` are supplied by the engine: the first
    records progress (and an optional PNG preview) where watchers see it, the second says whether any
    watcher asked for a preview at this step, so previews are only rendered when someone looks.
    `settings` are the settings of the process running the job (`glassbox serve` or `glassbox worker`).
    """

    job_id: str
    repository: ModelRepository
    settings: Settings
    device: torch.device
    token: CancellationToken
    seed: int
    attempt: int
    publish: Callable[[Progress, bytes | None], None]
    preview_due: Callable[[int], bool] = field(default=lambda _step: False)

    def generator(self, device: torch.device | None = None) -> torch.Generator:
        """A fresh torch generator seeded with the job's seed (on `device`, default the job's device)."""
        generator = torch.Generator(device=device or self.device)
        generator.manual_seed(self.seed)
        return generator

    def report(
        self,
        step: int,
        total: int,
        objective_value: float = math.nan,
        message: str = "",
        *,
        preview: Callable[[], bytes] | None = None,
    ) -> None:
        """Record progress after `step` of `total` steps; raise Cancelled if the job was cancelled.

        `preview` renders a PNG of the current state; it is only called when a watcher asked for a
        preview at this step.
        """
        png = preview() if preview is not None and self.preview_due(step) else None
        self.publish(Progress(step=step, total=total, objective=float(objective_value), message=message), png)
        self.token.check()


class SpecIdentity(NamedTuple):
    """What the engine reads from a spec: the model the job runs on and the seed it runs with."""

    model: str
    seed: int


@dataclass(frozen=True)
class JobKind(Generic[Spec, CoreSpec]):
    """One kind of job: the hooks the engines call (see the module docstring)."""

    name: str
    encode: Callable[[Spec], bytes]
    decode: Callable[[bytes], Spec]
    identity: Callable[[Spec], SpecIdentity]
    validate: Callable[[Spec, ModelRepository, Settings], CoreSpec]
    run: Callable[[CoreSpec, JobContext], bytes]


class JobKinds:
    """The kinds an engine serves, by name: what the composition root registers."""

    def __init__(self, kinds: Iterable[JobKind[Any, Any]]) -> None:
        self._kinds: dict[str, JobKind[Any, Any]] = {}
        for kind in kinds:
            if kind.name in self._kinds:
                raise ValueError(f"job kind {kind.name!r} is registered twice")
            self._kinds[kind.name] = kind

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def find(self, name: str) -> JobKind[Any, Any]:
        """The kind registered under `name`; InvalidArgument (field `spec`) when there is none."""
        try:
            return self._kinds[name]
        except KeyError:
            raise InvalidArgument(
                f"unknown job kind {name!r}; known kinds: {self.names()}", field="spec"
            ) from None
