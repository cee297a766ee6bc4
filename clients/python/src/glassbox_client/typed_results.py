"""One place mapping a job kind to its typed result class (`Job.typed_result`)."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from glassbox_client.evaluation import ExplanationReport
from glassbox_client.inspection_results import ActivationAtlas, EmbeddingMap, TopActivating
from glassbox_client.robustness_results import RobustnessReport

TYPED_RESULTS: dict[str, Any] = {
    "robustness_evaluation": RobustnessReport.from_proto,
    "explanation_evaluation": ExplanationReport,
    "embedding_map": EmbeddingMap.from_proto,
    "top_activating": TopActivating.from_proto,
    "activation_atlas": ActivationAtlas.from_proto,
}


def typed_result(job_id: str, kind: str, result: Message) -> Any:
    """The typed result of a succeeded job of `kind`; None for the kinds `JobResult` already covers
    (the generative ones: images, arrays and values)."""
    parse = TYPED_RESULTS.get(kind)
    return parse(job_id, result) if parse is not None else None
