"""`GlassboxClient.monitoring`: explanation monitoring (MonitoringService) — the recorded checks of a
model's versions and the change report of a version pair.

    with GlassboxClient() as glassbox:
        for record in glassbox.monitoring.explanation_records("shapes"):
            for check in record.methods:
                print(record.version, check.method, check.verdict, check.reasons)
        changes = glassbox.monitoring.explanation_changes("shapes", "saliency", version="2")
        print(changes.spearman, [c.name for c in changes.changes])
        changes.picture.save("changes.png")
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from PIL import Image

from glassbox_client._generated.glassbox.v1 import monitoring_pb2 as pb
from glassbox_client._generated.glassbox.v1 import monitoring_pb2_grpc
from glassbox_client.calls import ServiceCalls

VERDICTS = {pb.EXPLANATION_VERDICT_PASS: "pass", pb.EXPLANATION_VERDICT_DRIFT: "drift"}


@dataclass(frozen=True)
class RegionMass:
    region: str
    mass: float
    area_fraction: float


@dataclass(frozen=True)
class MapSimilarity:
    baseline_version: str
    relation: str
    spearman: float
    ssim: float
    top_k_overlap: float


@dataclass(frozen=True)
class MethodCheck:
    method: str
    pointing_game: float | None
    relevance_mass: float | None
    regions: list[RegionMass]
    deletion_auc: float
    insertion_auc: float
    similarity: list[MapSimilarity]
    verdict: str  # "pass" or "drift"
    reasons: list[str]

    def region(self, name: str) -> RegionMass:
        return next(r for r in self.regions if r.region == name)


@dataclass(frozen=True)
class PredictionAgreement:
    baseline_version: str
    relation: str
    agreement: float


@dataclass(frozen=True)
class ExplanationRecord:
    model: str
    version: str
    time: float  # Unix seconds
    reference_set: str
    trigger: str
    images: int
    methods: list[MethodCheck]
    agreements: list[PredictionAgreement]
    reasons: list[str]
    budget_forward_passes: int
    forward_passes: int
    backward_passes: int
    seconds: float
    check_id: str

    def method(self, name: str) -> MethodCheck:
        return next(m for m in self.methods if m.method == name)

    @property
    def drifted(self) -> bool:
        return any(m.verdict == "drift" for m in self.methods)


@dataclass(frozen=True)
class ExplanationHistoryPage:
    records: list[ExplanationRecord]
    next_page_token: str


@dataclass(frozen=True)
class ImageChange:
    index: int
    name: str
    target: str
    prediction_before: str
    prediction_after: str
    spearman: float
    ssim: float
    top_k_overlap: float
    overlays_png: bytes = field(repr=False)

    @property
    def overlays(self) -> Image.Image:
        """The image, the older version's map and the newer version's map, side by side."""
        return Image.open(io.BytesIO(self.overlays_png))


@dataclass(frozen=True)
class ExplanationChanges:
    model: str
    version: str
    baseline_version: str
    method: str
    reference_set: str
    images: int
    spearman: float
    ssim: float
    top_k_overlap: float
    prediction_agreement: float
    changes: list[ImageChange]
    report_png: bytes = field(repr=False)
    budget_forward_passes: int = 0
    forward_passes: int = 0

    @property
    def picture(self) -> Image.Image:
        return Image.open(io.BytesIO(self.report_png))


def _method(message: pb.MethodExplanationCheck) -> MethodCheck:
    return MethodCheck(
        method=message.method,
        pointing_game=message.pointing_game if message.HasField("pointing_game") else None,
        relevance_mass=message.relevance_mass if message.HasField("relevance_mass") else None,
        regions=[RegionMass(r.region, r.mass, r.area_fraction) for r in message.regions],
        deletion_auc=message.deletion_auc,
        insertion_auc=message.insertion_auc,
        similarity=[
            MapSimilarity(s.baseline_version, s.relation, s.spearman, s.ssim, s.top_k_overlap)
            for s in message.similarity
        ],
        verdict=VERDICTS.get(message.verdict, "unspecified"),
        reasons=list(message.reasons),
    )


def record_from_message(message: pb.ExplanationRecord) -> ExplanationRecord:
    return ExplanationRecord(
        model=message.model,
        version=message.version,
        time=message.time.ToNanoseconds() / 1e9,
        reference_set=message.reference_set,
        trigger=message.trigger,
        images=message.images,
        methods=[_method(m) for m in message.methods],
        agreements=[
            PredictionAgreement(a.baseline_version, a.relation, a.agreement) for a in message.agreements
        ],
        reasons=list(message.reasons),
        budget_forward_passes=message.budget_forward_passes,
        forward_passes=message.forward_passes,
        backward_passes=message.backward_passes,
        seconds=message.seconds,
        check_id=message.check_id,
    )


def changes_from_message(message: pb.GetExplanationChangesResponse) -> ExplanationChanges:
    return ExplanationChanges(
        model=message.model,
        version=message.version,
        baseline_version=message.baseline_version,
        method=message.method,
        reference_set=message.reference_set,
        images=message.images,
        spearman=message.spearman,
        ssim=message.ssim,
        top_k_overlap=message.top_k_overlap,
        prediction_agreement=message.prediction_agreement,
        changes=[
            ImageChange(
                c.index,
                c.name,
                c.target,
                c.prediction_before,
                c.prediction_after,
                c.spearman,
                c.ssim,
                c.top_k_overlap,
                c.overlays_png,
            )
            for c in message.changes
        ],
        report_png=message.report_png,
        budget_forward_passes=message.budget_forward_passes,
        forward_passes=message.forward_passes,
    )


def history_request(
    model: str, version: str, page_size: int, page_token: str
) -> pb.GetExplanationHistoryRequest:
    return pb.GetExplanationHistoryRequest(
        model=model, version=version, page_size=page_size, page_token=page_token
    )


def page_from_response(response: pb.GetExplanationHistoryResponse) -> ExplanationHistoryPage:
    return ExplanationHistoryPage(
        [record_from_message(r) for r in response.records], response.next_page_token
    )


def changes_request(model: str, method: str, **options: Any) -> pb.GetExplanationChangesRequest:
    """options: version, baseline_version, reference_set, images, top, top_k_percent."""
    return pb.GetExplanationChangesRequest(model=model, method=method, **options)


class Monitoring:
    """`GlassboxClient.monitoring`: the MonitoringService."""

    def __init__(self, channel: grpc.Channel, metadata: Callable[[], tuple], default_timeout: float) -> None:
        self._call = ServiceCalls(
            monitoring_pb2_grpc.MonitoringServiceStub(channel), metadata, default_timeout
        )

    def explanation_history(
        self,
        model: str,
        *,
        version: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> ExplanationHistoryPage:
        """One page of the model's explanation checks, newest first (0 = the server's 100 per page)."""
        request = history_request(model, version, page_size, page_token)
        return page_from_response(self._call("GetExplanationHistory", request, timeout))

    def explanation_records(
        self, model: str, *, version: str = "", page_size: int = 0, timeout: float | None = None
    ) -> Iterator[ExplanationRecord]:
        """Every recorded check of the model (only `version`'s when given), newest first, page by page."""
        token = ""
        while True:
            page = self.explanation_history(
                model, version=version, page_size=page_size, page_token=token, timeout=timeout
            )
            yield from page.records
            token = page.next_page_token
            if not token:
                return

    def explanation_changes(
        self, model: str, method: str, *, timeout: float | None = None, **options: Any
    ) -> ExplanationChanges:
        """The change report of `baseline_version` (default: the version before) → `version` (default:
        the newest) for `method` on `reference_set` (default: the version's [monitoring] set); options:
        version, baseline_version, reference_set, images, top, top_k_percent."""
        return changes_from_message(
            self._call("GetExplanationChanges", changes_request(model, method, **options), timeout)
        )
