"""Static checks of the compute scheduler's alert rules and dashboard row, and of every rule file and
dashboard panel: PromQL parses (promql-parser) and selects only metrics, and groups only by labels,
that the server exports (read from `glassbox.metrics.Metrics`); annotations and legends print only
labels their expression keeps; every rule file is loaded by Prometheus and mirrored, group for group,
by a PrometheusRule; panels have unique ids, do not overlap and filter on `$job` and `$instance`."""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from glassbox.metrics import Metrics
from glassbox.serving import Priority
from prometheus_client.metrics import MetricWrapperBase
from support.promql_checks import (
    DEPLOY,
    RULES_DIR,
    SUFFIXES,
    dashboard,
    exported,
    kept_labels,
    parse_dashboard_expr,
    prometheus_rules,
    rule_files,
    rules,
    selected,
    selectors,
    subexpressions,
)

RULES = RULES_DIR / "scheduler.yml"
TARGET_LABELS = {"job", "instance"}
"""Labels Prometheus attaches to every scraped series."""
SCHEDULER_PREFIXES = ("glassbox_scheduler_", "glassbox_admission_")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EQUAL, REGEX = str(promql_parser.MatchOp.Equal), str(promql_parser.MatchOp.Re)


def _by_alert() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules(RULES)}


def _labels_by_sample(metrics: Metrics) -> dict[str, set[str]]:
    """Sample name → the labels the server gives it (histogram buckets add `le`); prometheus-client keeps
    a metric's label names only in `_labelnames`."""
    labels: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        name = metric.describe()[0].name
        for suffix in SUFFIXES.get(metric._type, ("",)):
            labels[name + suffix] = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
    return labels


def _check_grouping_labels(expr: Any, labels: dict[str, set[str]], where: str) -> None:
    """Every `by (...)` and `on (...)` names labels the selected metrics have."""
    for sub in subexpressions(expr):
        names = [s.name for s in selectors(sub)]
        if not names or any(name not in labels for name in names):
            continue  # process_* and python_* come from prometheus-client's collectors
        available = TARGET_LABELS | set().union(*(labels[name] for name in names))
        used: list[str] = []
        if isinstance(sub, promql_parser.AggregateExpr) and sub.modifier is not None:
            used = list(sub.modifier.labels)
        if isinstance(sub, promql_parser.BinaryExpr) and sub.modifier is not None and sub.modifier.matching:
            used = list(sub.modifier.matching.labels) + list(sub.modifier.group_labels or ())
        assert set(used) <= available, f"{where}: {sorted(set(used) - available)} not labels of {names}"


def _printed(text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, text))


@pytest.mark.parametrize("path", rule_files(), ids=lambda path: path.name)
def test_rules_parse_select_exported_metrics_and_print_kept_labels(path: Path) -> None:
    metrics, names = exported()
    labels = _labels_by_sample(metrics)
    for rule in rules(path):
        assert re.fullmatch(r"Glassbox[A-Z][A-Za-z]+", rule["alert"]) and rule["for"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert set(rule["annotations"]) == {"summary", "description"}
        expr = promql_parser.parse(rule["expr"])
        chosen = selected(expr)
        assert chosen and chosen <= names, f"{rule['alert']} selects {chosen - names}"
        _check_grouping_labels(expr, labels, rule["alert"])
        kept = kept_labels(expr)
        printed = _printed(" ".join(rule["annotations"].values()), r"\$labels\.(\w+)")
        assert kept is not None and "job" in kept, f"{rule['alert']} keeps {kept}"
        assert printed <= kept, f"{rule['alert']} prints {printed - kept}, which its expression drops"


def test_scheduler_alerts_cover_refusals_queue_time_and_estimates() -> None:
    alerts = _by_alert()
    assert {name: rule["for"] for name, rule in alerts.items()} == {
        "GlassboxAdmissionsRefused": "10m",
        "GlassboxQueueTimeHigh": "10m",
        "GlassboxEstimatesOff": "30m",
    }
    metrics, _names = exported()
    refused = metrics.refused.describe()[0].name
    queue = metrics.queue_seconds.describe()[0].name
    estimated, measured = (
        h.describe()[0].name for h in (metrics.estimated_seconds, metrics.measured_seconds)
    )
    assert selected(promql_parser.parse(alerts["GlassboxAdmissionsRefused"]["expr"])) == {
        f"{refused}_total",
        f"{queue}_count",
    }
    assert selected(promql_parser.parse(alerts["GlassboxQueueTimeHigh"]["expr"])) == {f"{queue}_bucket"}
    assert selected(promql_parser.parse(alerts["GlassboxEstimatesOff"]["expr"])) == {
        f"{measured}_sum",
        f"{estimated}_sum",
        f"{estimated}_count",
    }
    assert "reason" in kept_labels(promql_parser.parse(alerts["GlassboxAdmissionsRefused"]["expr"]))
    assert {"model", "call"} <= kept_labels(promql_parser.parse(alerts["GlassboxEstimatesOff"]["expr"]))


def _thresholds(expr: Any) -> set[tuple[str, float]]:
    return {
        (str(sub.op), sub.rhs.val)
        for sub in subexpressions(expr)
        if isinstance(sub, promql_parser.BinaryExpr) and isinstance(sub.rhs, promql_parser.NumberLiteral)
    }


def test_queue_alert_is_the_interactive_p99_above_one_second() -> None:
    expr = promql_parser.parse(_by_alert()["GlassboxQueueTimeHigh"]["expr"])
    assert isinstance(expr, promql_parser.BinaryExpr) and str(expr.op) == ">" and expr.rhs.val == 1
    assert isinstance(expr.lhs, promql_parser.Call) and expr.lhs.func.name == "histogram_quantile"
    assert expr.lhs.args[0].val == 0.99
    (selector,) = selectors(expr)
    priority = next(m for m in selector.matchers.matchers if m.name == "priority")
    assert priority.op == promql_parser.MatchOp.Equal
    assert priority.value == Priority.INTERACTIVE.name.lower()  # what the scheduler reports


def test_refusal_and_estimate_alerts_have_their_thresholds() -> None:
    alerts = _by_alert()
    assert (">", 0.05) in _thresholds(promql_parser.parse(alerts["GlassboxAdmissionsRefused"]["expr"]))
    estimates = _thresholds(promql_parser.parse(alerts["GlassboxEstimatesOff"]["expr"]))
    assert {(">", 3.0), ("<", 0.33)} <= estimates, estimates
    assert any(op == ">=" for op, _value in estimates), (
        "a minimum number of calls keeps it quiet at low traffic"
    )


def test_every_rule_file_is_loaded_and_mirrored_by_a_prometheusrule() -> None:
    files = rule_files()
    assert RULES in files
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    loaded = {
        Path(path)
        for pattern in prometheus["rule_files"]
        for path in glob.glob(str(DEPLOY / "prometheus" / pattern))
    }
    assert set(files) <= loaded
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = dict(m.split(":")[:2] for m in compose["services"]["prometheus"]["volumes"])
    inline = yaml.safe_load(compose["configs"]["prometheus"]["content"])
    in_container = {Path(mounts["./prometheus/rules"]) / path.name for path in files}
    compose_loaded = {
        path for pattern in inline["rule_files"] for path in in_container if path.match(pattern)
    }
    assert compose_loaded == in_container
    manifests = prometheus_rules()
    specs = {path.name: yaml.safe_load(path.read_text()) for path in files}
    for name, manifest in manifests.items():
        assert manifest["kind"] == "PrometheusRule" and manifest["apiVersion"] == "monitoring.coreos.com/v1"
        assert manifest["metadata"]["labels"] == {"app.kubernetes.io/name": "glassbox"}, name
    mirrored = {
        path_name: [name for name, m in manifests.items() if m["spec"] == spec]
        for path_name, spec in specs.items()
    }
    assert all(len(names) == 1 for names in mirrored.values()), mirrored
    assert len(manifests) == len(files), "a PrometheusRule without a rule file"
    assert manifests["glassbox-scheduler"]["spec"] == specs[RULES.name]
    groups = [group["name"] for spec in specs.values() for group in spec["groups"]]
    alerts = [rule["alert"] for path in files for rule in rules(path)]
    assert len(groups) == len(set(groups)) and len(alerts) == len(set(alerts))


def _top_level_panels() -> list[dict[str, Any]]:
    return dashboard()["panels"]


def _scheduler_row_panels() -> list[dict[str, Any]]:
    panels = _top_level_panels()
    (index,) = [i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Compute scheduler"]
    row = panels[index]
    if row.get("collapsed"):
        return row["panels"]
    following: list[dict[str, Any]] = []
    for panel in panels[index + 1 :]:
        if panel["type"] == "row":
            break
        following.append(panel)
    return following


def test_dashboard_scheduler_row_shows_every_scheduler_metric() -> None:
    metrics, names = exported()
    families = {
        family.name for family in metrics.registry.collect() if family.name.startswith(SCHEDULER_PREFIXES)
    }
    assert len(families) >= 8, families
    panels = _scheduler_row_panels()
    assert len(panels) >= 6
    shown: set[str] = set()
    for panel in panels:
        for target in panel["targets"]:
            shown |= selected(parse_dashboard_expr(target["expr"]))
    assert shown <= names
    for family in families:
        assert any(name.startswith(family) for name in shown), f"{family} is not on the scheduler row"
    queue, estimated, measured = (
        h.describe()[0].name
        for h in (metrics.queue_seconds, metrics.estimated_seconds, metrics.measured_seconds)
    )
    assert f"{queue}_bucket" in shown
    assert {f"{estimated}_sum", f"{estimated}_count", f"{measured}_sum", f"{measured}_count"} <= shown
    quantiles = {
        sub.args[0].val
        for panel in panels
        for target in panel["targets"]
        for sub in subexpressions(parse_dashboard_expr(target["expr"]))
        if isinstance(sub, promql_parser.Call)
        and sub.func.name == "histogram_quantile"
        and f"{queue}_bucket" in selected(sub)
    }
    assert quantiles == {0.5, 0.99}


def test_dashboard_panels_have_unique_ids_no_overlap_and_the_job_and_instance_filters() -> None:
    metrics, _names = exported()
    labels = _labels_by_sample(metrics)
    top = _top_level_panels()
    every = [panel for p in top for panel in (p, *p.get("panels", []))]
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = [p["title"] for p in every]
    assert len(titles) == len(set(titles)), "panel titles must be unique (the tests key panels by title)"
    cells: dict[tuple[int, int], str] = {}
    for panel in top:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel[
            "title"
        ]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    for panel in every:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            expr = parse_dashboard_expr(target["expr"])
            for selector in selectors(expr):
                matchers = {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}
                assert {("job", EQUAL, "$job"), ("instance", REGEX, "$instance")} <= matchers, (
                    f"{panel['title']}: {selector.name} lacks the $job/$instance filters"
                )
            _check_grouping_labels(expr, labels, panel["title"])
            kept = kept_labels(expr)
            legend = _printed(target.get("legendFormat", ""), r"\{\{\s*(\w+)\s*\}\}")
            assert kept is None or legend <= kept, f"{panel['title']}: legend {legend - kept} is dropped"
