"""Job kinds: the contract between the job engines and the long-running work they execute.

A kind is registered once, under the name of its member in `SubmitJobRequest.spec` (the same name is
its member in `Job.result`), with

- `spec_type` / `result_type`: the proto messages (from generative.proto) it takes and returns;
- `validate(spec, repository, settings) -> core spec`: checks the request against the server's
  settings (`settings.jobs.limits`, `settings.limits`, `settings.attribution`: the operator's, never
  the embedded defaults) and translates it to a core object,
  raising `core.errors.InvalidArgument` / `FailedPrecondition` / `NotFound` with `field=` naming the
  field (relative to the spec, e.g. `field="steps"`; the servicer prefixes the oneof name). It runs
  on the server *before* anything is queued, and again in the worker that executes the job (a
  distributed worker gets the spec as proto bytes and may hold a different model repository);
- `run(core_spec, ctx) -> result message`: does the work. It must use `ctx.seed` / `ctx.generator()`
  for every random draw (jobs are deterministic given a seed; the global torch RNG is shared by
  concurrent jobs), run on `ctx.device`, and call `ctx.report(...)` once per optimisation step.
  `report` raises `core.errors.Cancelled` when the job was cancelled, so a cancelled job stops within
  one step; `run` lets that exception propagate.

Every spec message must have the fields `string model`, `string version` (empty = newest) and an
integer `seed`: the engine reads them to list jobs by model and to seed the job. `register` checks this.

Registration: an adapter module (proto ↔ core; the core itself imports no protos) calls `register` at
import time and is named in `KIND_MODULES`; `load_kinds()` imports them all. Example:

    register(JobKind(
        name="class_visualisation",
        spec_type=generative_pb2.ClassVisualisationSpec,
        result_type=generative_pb2.ClassVisualisationResult,
        validate=validate_class_visualisation,   # (spec, repository, settings) -> ClassVisualisation
        run=run_class_visualisation,             # (ClassVisualisation, JobContext) -> result message
    ))
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch
from google.protobuf.message import Message

from glassbox.config import Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.models.repository import ModelRepository

CoreSpec = TypeVar("CoreSpec")

KIND_MODULES: tuple[str, ...] = (
    "glassbox.generative.kinds",
    "glassbox.generative.shape_bias_kind",
    "glassbox.inspection.kinds",
    "glassbox.evaluation.kinds",
    "glassbox.robustness.kinds",
)
"""Adapter modules that register job kinds when imported."""

REQUIRED_SPEC_FIELDS = ("model", "version", "seed")


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


@dataclass(frozen=True)
class JobKind(Generic[CoreSpec]):
    """One kind of job: its proto types and the two functions the engine calls."""

    name: str
    spec_type: type[Message]
    result_type: type[Message]
    validate: Callable[[Any, ModelRepository, Settings], CoreSpec]
    run: Callable[[CoreSpec, JobContext], Message]


_KINDS: dict[str, JobKind[Any]] = {}


def register(kind: JobKind[Any]) -> JobKind[Any]:
    """Make a kind available under `kind.name`; its spec must carry model, version and seed."""
    if kind.name in _KINDS:
        raise ValueError(f"job kind {kind.name!r} is registered twice")
    fields = kind.spec_type.DESCRIPTOR.fields_by_name
    missing = [name for name in REQUIRED_SPEC_FIELDS if name not in fields]
    if missing:
        raise TypeError(f"job kind {kind.name!r}: {kind.spec_type.__name__} lacks the fields {missing}")
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind[Any]:
    """The kind registered under `name` (KeyError when there is none)."""
    return _KINDS[name]


def kind_names() -> list[str]:
    return sorted(_KINDS)


def load_kinds() -> list[str]:
    """Import every adapter module in KIND_MODULES (each registers its kinds); return the kind names."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    return kind_names()
