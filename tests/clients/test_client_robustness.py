"""`GlassboxClient.robustness` over a real server: an evaluation of 16 images of `shapes-val` as a typed
report that agrees with its own JSON and picture, inline images, bad input named by field (the server
keeps serving), and the monitoring history as typed records."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from glassbox_client import GlassboxClient, InvalidArgumentError, NotFoundError
from glassbox_client.robustness import robustness_spec
from glassbox_client.robustness_results import RobustnessReport
from support.model_repository import copy_shipped_model, monitoring_section
from support.paths import ROOT
from support.servers import RunningServer

EPSILONS = [2 / 255, 8 / 255]
MONITORING = monitoring_section()


@pytest.fixture(scope="module")
def running(start_server, tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    root = tmp_path_factory.mktemp("models")
    copy_shipped_model(root, "shapes", extra_toml=MONITORING)
    return start_server(model_repository=root, robustness={"check_interval_seconds": 0.3})


@pytest.fixture(scope="module")
def client(running: RunningServer):
    with GlassboxClient(running.address, timeout=30) as glassbox:
        yield glassbox


@pytest.fixture(scope="module")
def report(client: GlassboxClient) -> RobustnessReport:
    return client.robustness.evaluate(
        "shapes",
        images="shapes-val",
        limit=16,
        seed=7,
        attacks=["fgsm", {"method": "pgd_linf", "steps": 3, "relative_step_size": 0.5}],
        epsilons=EPSILONS,
        corruptions=[{"corruption": "jpeg", "severities": [1, 5]}],
        minimal_epsilon={"attack_index": 1, "iterations": 3},
        examples=2,
        timeout=120,
    )


def test_evaluate_returns_a_typed_report_matching_its_json(report: RobustnessReport) -> None:
    assert (report.model, report.version, report.images) == ("shapes", "1", 16)
    assert [(a.attack, round(a.epsilon * 255)) for a in report.attacks] == [
        ("fgsm", 2),
        ("fgsm", 8),
        ("pgd_linf", 2),
        ("pgd_linf", 8),
    ]
    assert report.json["clean_acc"] == pytest.approx(report.clean_accuracy) and report.json["n_ex"] == 16
    for typed, raw in zip(report.attacks, report.json["attacks"], strict=True):
        assert (raw["attack"], raw["threat_model"]) == (typed.attack, typed.threat_model)
        assert typed.threat_model == "Linf"
        assert raw["eps"] == pytest.approx(typed.epsilon) and raw["robust_acc"] == pytest.approx(
            typed.robust_accuracy
        )
        assert typed.mean_linf <= typed.epsilon + 1e-6 and typed.images == 16
    pgd_weak, pgd_strong = (report.robust_accuracy("pgd_linf", eps) for eps in EPSILONS)
    assert pgd_strong <= pgd_weak <= report.clean_accuracy
    assert [round(w.epsilon * 255) for w in report.worst_case] == [2, 8]
    for worst in report.worst_case:
        fgsm, pgd = (report.robust_accuracy(name, worst.epsilon) for name in ("fgsm", "pgd_linf"))
        assert worst.robust_accuracy <= min(fgsm, pgd)
    assert [(c.corruption, c.severity) for c in report.corruptions] == [("jpeg", 1), ("jpeg", 5)]
    with pytest.raises(KeyError, match="pgd_l2"):
        report.robust_accuracy("pgd_l2", 2 / 255)


def test_report_minimal_epsilon_plot_and_examples(report: RobustnessReport) -> None:
    search = report.minimal_epsilon
    assert search.attack == "pgd_linf" and search.max_epsilon == pytest.approx(8 / 255)
    assert len(search.per_image) == 16
    assert all(e is None or 0 <= e <= search.max_epsilon + 1e-6 for e in search.per_image)
    as_numbers = sorted(math.inf if e is None else e for e in search.per_image)
    assert search.lower_quartile <= search.median <= search.upper_quartile
    assert as_numbers[7] <= search.median <= as_numbers[8]
    assert report.json["minimal_eps"]["per_image"] == [
        "inf" if e is None else pytest.approx(e) for e in search.per_image
    ]
    assert report.plot.format == "PNG" and report.plot.width > 100
    assert 1 <= len(report.examples) <= 2
    for example in report.examples:
        assert example.adversarial_prediction.index != example.label
        assert example.picture.width > example.picture.height  # three panels side by side
    assert report.forward_passes > report.backward_passes > 0 and report.wall_seconds > 0


def test_inline_images_with_labels(client: GlassboxClient) -> None:
    star = ROOT / "docs" / "images" / "star.png"
    report = client.robustness.evaluate(
        "shapes",
        images=[star, star.read_bytes()],
        labels=[4, 4],
        attacks=["fgsm"],
        epsilons=[1 / 255],
        minimal_epsilon={"skip": True},
        examples=0,
    )
    assert report.images == 2 and report.clean_accuracy in (0.0, 0.5, 1.0)
    assert math.isnan(report.minimal_epsilon.median) and report.examples == []


def test_bad_input_is_named_and_the_server_keeps_serving(client: GlassboxClient) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        client.robustness.evaluate("shapes", images="shapes-val", attacks=["pgd_linf"], epsilons=[1.5])
    assert error.value.field == "robustness_evaluation.attacks[0].epsilons[0]"
    with pytest.raises(InvalidArgumentError) as error:
        client.robustness.evaluate("shapes", images=[ROOT / "docs" / "images" / "star.png"], labels=[9])
    assert error.value.field == "robustness_evaluation.images.inline.labels[0]"
    with pytest.raises(ValueError, match="method must be one of"):
        robustness_spec("shapes", images="shapes-val", attacks=["deepfool"], epsilons=[0.1])
    with pytest.raises(ValueError, match="no epsilons"):
        robustness_spec("shapes", images="shapes-val", attacks=["fgsm"])
    with pytest.raises(NotFoundError):
        client.robustness.history("missing")
    assert client.health() == "SERVING"


def test_history_returns_the_monitoring_records(client: GlassboxClient) -> None:
    deadline = time.monotonic() + 60
    records = client.robustness.history("shapes")
    while not records and time.monotonic() < deadline:
        time.sleep(0.3)
        records = client.robustness.history("shapes")
    (record,) = records
    assert (record.version, record.trigger, record.reference_set, record.images) == (
        "1",
        "new_version",
        "shapes-val",
        4,
    )
    assert timedelta(0) <= datetime.now(UTC) - record.time < timedelta(minutes=10)
    assert [a.attack for a in record.attacks] == ["fgsm"] and record.job_id
    assert 0 <= record.robust_accuracy("fgsm", 2 / 255) <= record.clean_accuracy
    assert client.robustness.history("shapes", version="2") == []
    assert client.robustness.history("shapes", limit=1)[0].job_id == record.job_id
