"""Explanation monitoring ↔ protobuf (monitoring.proto): history records and change reports."""

from __future__ import annotations

from glassbox_client._generated.glassbox.v1 import monitoring_pb2 as pb

from glassbox.monitoring.changes import ChangeReport
from glassbox.monitoring.record import DRIFT, ExplanationRecord, MethodCheck

VERDICTS = {"pass": pb.EXPLANATION_VERDICT_PASS, DRIFT: pb.EXPLANATION_VERDICT_DRIFT}


def _method(check: MethodCheck) -> pb.MethodExplanationCheck:
    message = pb.MethodExplanationCheck(
        method=check.method,
        regions=[
            pb.RegionMass(region=r.region, mass=r.mass, area_fraction=r.area_fraction) for r in check.regions
        ],
        deletion_auc=check.deletion_auc,
        insertion_auc=check.insertion_auc,
        similarity=[
            pb.MapSimilarity(
                baseline_version=s.baseline_version,
                relation=s.relation,
                spearman=s.spearman,
                ssim=s.ssim,
                top_k_overlap=s.top_k_overlap,
            )
            for s in check.similarity
        ],
        verdict=VERDICTS[check.verdict],
        reasons=list(check.reasons),
    )
    if check.pointing_game is not None:
        message.pointing_game = check.pointing_game
    if check.relevance_mass is not None:
        message.relevance_mass = check.relevance_mass
    return message


def record_message(record: ExplanationRecord) -> pb.ExplanationRecord:
    message = pb.ExplanationRecord(
        model=record.model,
        version=record.version,
        reference_set=record.reference_set,
        trigger=record.trigger,
        images=record.images,
        methods=[_method(check) for check in record.methods],
        agreements=[
            pb.PredictionAgreement(
                baseline_version=a.baseline_version, relation=a.relation, agreement=a.prediction_agreement
            )
            for a in record.agreements
        ],
        reasons=list(record.reasons),
        budget_forward_passes=record.budget_forward_passes,
        forward_passes=record.forward_passes,
        backward_passes=record.backward_passes,
        seconds=record.seconds,
        check_id=record.check_id,
    )
    message.time.FromNanoseconds(round(record.time * 1e9))
    return message


def changes_message(report: ChangeReport) -> pb.GetExplanationChangesResponse:
    return pb.GetExplanationChangesResponse(
        model=report.model,
        version=report.version,
        baseline_version=report.baseline_version,
        method=report.method,
        reference_set=report.reference_set,
        images=report.images,
        spearman=report.spearman,
        ssim=report.ssim,
        top_k_overlap=report.top_k_overlap,
        prediction_agreement=report.prediction_agreement,
        changes=[
            pb.ImageChange(
                index=c.index,
                name=c.name,
                target=c.target,
                prediction_before=c.prediction_before,
                prediction_after=c.prediction_after,
                spearman=c.spearman,
                ssim=c.ssim,
                top_k_overlap=c.top_k_overlap,
                overlays_png=c.overlays_png,
            )
            for c in report.changes
        ],
        report_png=report.report_png,
        budget_forward_passes=report.budget_forward_passes,
        forward_passes=report.forward_passes,
    )
