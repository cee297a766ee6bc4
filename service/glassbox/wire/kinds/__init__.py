"""The job kinds this service runs, one module per area: `job_kinds()` is what the composition roots
(`server.app`, `glassbox worker`) hand the job engine."""

from __future__ import annotations

from typing import Any

from glassbox.jobs.kinds import JobKind
from glassbox.wire.kinds import evaluation, generative, inspection, robustness, shape_bias


def job_kinds() -> tuple[JobKind[Any, Any], ...]:
    """Every job kind, each built from its proto adapter."""
    return (
        *generative.KINDS,
        *shape_bias.KINDS,
        *inspection.KINDS,
        *evaluation.KINDS,
        *robustness.KINDS,
    )
