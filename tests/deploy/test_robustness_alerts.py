"""Static checks of the robustness alert rules and of every dashboard query: every PromQL expression
parses (promql-parser, the Rust parser Prometheus-compatible tools use) and selects only metrics the
server exports (read from `glassbox.metrics.Metrics`, not written down twice); annotations use only
labels the expression keeps; the Prometheus, compose and Kubernetes files load the same rules."""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from support.promql_checks import (
    DEPLOY,
    RULES_DIR,
    dashboard_exprs,
    exported,
    parse_dashboard_expr,
    prometheus_rules,
    rules,
    selected,
)

RULES = RULES_DIR / "robustness.yml"


def _rules() -> list[dict[str, Any]]:
    return rules(RULES)


def test_alerts_name_the_exported_robustness_metrics() -> None:
    metrics, names = exported()
    robust, clean = (gauge.describe()[0].name for gauge in (metrics.robust_accuracy, metrics.clean_accuracy))
    by_metric: dict[str, list[str]] = {}
    for rule in _rules():
        chosen = selected(promql_parser.parse(rule["expr"]))
        assert chosen and chosen <= names, f"{rule['alert']} selects {chosen - names}"
        for name in chosen:
            by_metric.setdefault(name, []).append(rule["alert"])
    assert len(by_metric.get(robust, [])) >= 2 and len(by_metric.get(clean, [])) >= 2, by_metric


def test_alerts_compare_versions_and_time_and_keep_the_labels_they_print() -> None:
    offsets, version_comparisons = 0, 0
    for rule in _rules():
        assert re.fullmatch(r"Glassbox[A-Z][A-Za-z]+", rule["alert"]) and rule["for"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert set(rule["annotations"]) == {"summary", "description"}
        expr = promql_parser.parse(rule["expr"])
        assert isinstance(expr, promql_parser.BinaryExpr) and str(expr.op) == "<"
        kept = set(expr.lhs.modifier.labels)
        printed = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
        assert printed and printed <= kept, f"{rule['alert']} prints {printed - kept}, not in by {kept}"
        assert "instance" not in kept, "replicas report the same value: aggregate them away"
        offsets += "offset 1d" in rule["expr"]
        version_comparisons += "version" in kept and expr.modifier is not None
    assert offsets >= 2 and version_comparisons >= 2


def test_every_prometheus_setup_loads_the_rules() -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    matched = {
        Path(path)
        for pattern in prometheus["rule_files"]
        for path in glob.glob(str(DEPLOY / "prometheus" / pattern))
    }
    assert RULES in matched
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = dict(m.split(":")[:2] for m in compose["services"]["prometheus"]["volumes"])
    target = mounts["./prometheus/rules"]
    inline = yaml.safe_load(compose["configs"]["prometheus"]["content"])
    assert any(Path(pattern).parent == Path(target) for pattern in inline["rule_files"])
    manifest = prometheus_rules()["glassbox-robustness"]
    assert manifest["kind"] == "PrometheusRule" and manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["spec"] == yaml.safe_load(RULES.read_text())


@pytest.mark.parametrize("title", [title for title, exprs in dashboard_exprs().items() if exprs])
def test_dashboard_queries_parse_and_name_exported_metrics(title: str) -> None:
    _metrics, names = exported()
    for expr in dashboard_exprs()[title]:
        chosen = selected(parse_dashboard_expr(expr))
        assert chosen and chosen <= names, f"{title}: {chosen - names}"


def test_dashboard_shows_every_robustness_gauge() -> None:
    metrics, _names = exported()
    gauges = (metrics.robust_accuracy, metrics.clean_accuracy, metrics.minimal_epsilon_median)
    shown = {
        name
        for exprs in dashboard_exprs().values()
        for expr in exprs
        for name in selected(parse_dashboard_expr(expr))
    }
    assert {gauge.describe()[0].name for gauge in gauges} <= shown
