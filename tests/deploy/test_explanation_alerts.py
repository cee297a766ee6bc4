"""Explanation monitoring end to end, as the README tells it: the shipped `shapes` model is monitored;
the documented one-liner puts the shortcut model's weights in as version 2 while the server runs; the
first check of version 2 finds the drift, and the alert rules of deploy/ (evaluated on the samples the
server exposes on /metrics) fire for version 2 and not for version 1. The dashboard's explanation row
shows it. The assertions follow the story (the honest model looks at the shape, the shortcut model at
the corner patch), not exact numbers, so a retrained demo model keeps them true."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import promql_parser
import pytest
from glassbox_client import GlassboxClient
from glassbox_client.monitoring import ExplanationRecord
from support.paths import MODELS, ROOT
from support.promql_checks import RULES_DIR, dashboard_panels, exported, parse_dashboard_expr, rules, selected
from support.promql_eval import Evaluator, scrape
from support.servers import RunningServer

RULES = RULES_DIR / "explanations.yml"
CORNER = "top-left corner"
JOB = "glassbox"


def _one_liner() -> str:
    """The README's command that puts the shortcut weights in as version 2 of shapes."""
    (line,) = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("cp -r models/shapes/1 ")
    ]
    return line


def _record(client: GlassboxClient, version: str, timeout: float = 180) -> ExplanationRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = client.monitoring.explanation_history("shapes", version=version)
        if page.records:
            return page.records[-1]  # the first check of the version
        time.sleep(0.3)
    pytest.fail(f"no explanation check of shapes version {version} within {timeout} s")


def _firing(running: RunningServer) -> dict[str, set[tuple[str, ...]]]:
    """Alert → the (version, method or baseline) of every series its expression returns now."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{running.server.metrics.port}/metrics").read().decode()
    evaluator = Evaluator(scrape(text, job=JOB, instance=running.address))
    fired: dict[str, set[tuple[str, ...]]] = {}
    for rule in rules(RULES):
        for labels, _value in evaluator.query(rule["expr"]):
            label = dict(labels)
            fired.setdefault(rule["alert"], set()).add(
                (label.get("version", ""), label.get("method", label.get("baseline_version", "")))
            )
    return fired


def _dashboard(running: RunningServer) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{running.server.metrics.port}/metrics").read().decode()
    evaluator = Evaluator(scrape(text, job=JOB, instance=running.address))
    shown = {}
    for panel in dashboard_panels():
        if panel.get("type") == "row" or not any(
            "glassbox_explanation_" in t["expr"] for t in panel["targets"]
        ):
            continue
        for target in panel["targets"]:
            expr = target["expr"].replace("$job", JOB).replace("$instance", ".*")
            shown[f"{panel['title']}/{target['refId']}"] = [
                (dict(labels), v) for labels, v in evaluator.query(expr)
            ]
    return shown


@pytest.fixture(scope="module")
def demo(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, RunningServer]:
    workdir = tmp_path_factory.mktemp("demo")
    for model in ("shapes", "shapes-shortcut"):
        shutil.copytree(MODELS / model, workdir / "models" / model)
    running = start_server(
        model_repository=workdir / "models",
        model_repository_poll_seconds=0.2,
        robustness={"check_interval_seconds": 0.5},
    )
    return workdir, running


def test_the_shortcut_weights_as_a_new_version_raise_the_drift_alert(
    demo: tuple[Path, RunningServer],
) -> None:
    workdir, running = demo
    with GlassboxClient(running.address) as client:
        honest = _record(client, "1")
        assert honest.trigger == "new_version" and not honest.drifted, honest.methods
        assert not _firing(running), "nothing fires while only the honest version is served"
        subprocess.run(["sh", "-c", _one_liner()], cwd=workdir, check=True)
        shortcut = _record(client, "2")
    assert shortcut.trigger == "new_version"  # the first check of the new version finds it
    for name in ("saliency", "grad_cam"):
        before, after = honest.method(name), shortcut.method(name)
        assert after.verdict == "drift", after
        assert after.pointing_game < before.pointing_game  # localisation falls
        (similarity,) = after.similarity
        assert similarity.baseline_version == "1" and similarity.relation == "previous,baseline"
        assert similarity.spearman < 0.5  # the maps no longer resemble version 1's
        assert any("Spearman vs version 1" in reason for reason in after.reasons)
    saliency_before, saliency_after = honest.method("saliency"), shortcut.method("saliency")
    corner_before, corner_after = saliency_before.region(CORNER), saliency_after.region(CORNER)
    assert corner_after.mass > 2 * corner_before.mass  # mass moves to the corner patch
    assert corner_after.mass > corner_after.area_fraction > corner_before.mass
    assert shortcut.forward_passes + shortcut.backward_passes > 0
    assert shortcut.forward_passes == shortcut.budget_forward_passes
    fired = _firing(running)
    assert {("2", "saliency"), ("2", "grad_cam")} <= fired["GlassboxExplanationDrift"]
    assert ("2", "saliency") in fired["GlassboxExplanationSimilarityLow"]
    assert ("2", "saliency") in fired["GlassboxExplanationLocalisationBelowOtherVersion"]
    assert ("2", "saliency") in fired["GlassboxExplanationRegionMassAboveOtherVersion"]
    assert all(version == "2" for alerts in fired.values() for version, _ in alerts), fired
    shown = _dashboard(running)
    drift = shown["Explanation drift verdict by model version and method/A"]
    assert {(s["version"], s["method"], v) for s, v in drift} == {
        ("1", "saliency", 0.0),
        ("1", "grad_cam", 0.0),
        ("2", "saliency", 1.0),
        ("2", "grad_cam", 1.0),
    }


def test_checks_ran_in_the_background_class_of_the_scheduler(demo: tuple[Path, RunningServer]) -> None:
    """No job runs on this server, so its background calls on `shapes` are the monitor's checks."""
    _workdir, running = demo
    with GlassboxClient(running.address) as client:
        _record(client, "1")
    text = urllib.request.urlopen(f"http://127.0.0.1:{running.server.metrics.port}/metrics").read().decode()
    queued = {
        labels["priority"]: value
        for name, labels, value in scrape(text)
        if name == "glassbox_scheduler_queue_seconds_count" and labels.get("model") == "shapes"
    }
    assert queued.get("background", 0) >= 1, queued
    assert queued.get("interactive", 0) == 0, queued


def test_the_dashboard_row_shows_every_explanation_gauge() -> None:
    metrics, _names = exported()
    gauges = {
        *(gauge.describe()[0].name for gauge in metrics.explanation.values()),
        *(
            gauge.describe()[0].name
            for gauge in (
                metrics.explanation_region_mass,
                metrics.explanation_similarity,
                metrics.explanation_ssim,
                metrics.explanation_top_k_overlap,
                metrics.explanation_prediction_agreement,
            )
        ),
    }
    shown = {
        name
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
        for name in selected(parse_dashboard_expr(target["expr"]))
    }
    assert gauges <= shown, gauges - shown
    alerted = {name for rule in rules(RULES) for name in selected(promql_parser.parse(rule["expr"]))}
    assert {"glassbox_explanation_drift", "glassbox_explanation_similarity"} <= alerted
