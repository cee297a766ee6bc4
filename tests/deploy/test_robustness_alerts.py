"""Static checks of the robustness alert rules and dashboard panels: every PromQL expression parses
(promql-parser, the Rust parser Prometheus-compatible tools use) and selects only metrics the server
exports (read from `glassbox.metrics.Metrics`, not written down twice); annotations use only labels the
expression keeps; the Prometheus, compose and Kubernetes files load the same rules."""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from glassbox.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "robustness.yml"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def _exported() -> tuple[Metrics, set[str]]:
    """The server's metrics and every sample name they can expose."""
    metrics = Metrics()
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return metrics, names


def _selected(expr: Any) -> set[str]:
    """Metric names of every vector selector in a parsed expression."""
    if isinstance(expr, promql_parser.VectorSelector):
        return {expr.name}
    if isinstance(expr, promql_parser.MatrixSelector):
        return _selected(expr.vector_selector)
    if isinstance(expr, promql_parser.BinaryExpr):
        return _selected(expr.lhs) | _selected(expr.rhs)
    if isinstance(expr, promql_parser.Call):
        return set().union(*(_selected(arg) for arg in expr.args))
    if isinstance(expr, promql_parser.AggregateExpr | promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return _selected(expr.expr)
    if isinstance(expr, promql_parser.SubqueryExpr):
        return _selected(expr.expr)
    assert isinstance(expr, promql_parser.NumberLiteral | promql_parser.StringLiteral), type(expr)
    return set()


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> dict[str, list[str]]:
    dashboard = json.loads((DEPLOY / "grafana" / "glassbox-dashboard.json").read_text())
    return {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in dashboard["panels"]}


def test_alerts_name_the_exported_robustness_metrics() -> None:
    metrics, exported = _exported()
    robust, clean = (gauge.describe()[0].name for gauge in (metrics.robust_accuracy, metrics.clean_accuracy))
    by_metric: dict[str, list[str]] = {}
    for rule in _rules():
        selected = _selected(promql_parser.parse(rule["expr"]))
        assert selected and selected <= exported, f"{rule['alert']} selects {selected - exported}"
        for name in selected:
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
    manifest = yaml.safe_load((DEPLOY / "k8s" / "prometheusrule.yaml").read_text())
    assert manifest["kind"] == "PrometheusRule" and manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["spec"] == yaml.safe_load(RULES.read_text())


@pytest.mark.parametrize("title", list(_dashboard_exprs()))
def test_dashboard_queries_parse_and_name_exported_metrics(title: str) -> None:
    _metrics, exported = _exported()
    for expr in _dashboard_exprs()[title]:
        parsed = promql_parser.parse(expr.replace("$__rate_interval", "5m"))
        assert _selected(parsed) <= exported, f"{title}: {_selected(parsed) - exported}"


def test_dashboard_shows_every_robustness_gauge() -> None:
    metrics, _exported_names = _exported()
    gauges = (metrics.robust_accuracy, metrics.clean_accuracy, metrics.minimal_epsilon_median)
    shown = {
        name
        for exprs in _dashboard_exprs().values()
        for expr in exprs
        for name in _selected(promql_parser.parse(expr.replace("$__rate_interval", "5m")))
    }
    assert {gauge.describe()[0].name for gauge in gauges} <= shown
