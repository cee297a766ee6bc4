"""What the alert-rule and dashboard tests share: the deployment files, the metric names the server
exports (read from `glassbox.metrics.Metrics`, not written down twice), and a walk over expressions
parsed by promql-parser (the Rust parser Prometheus-compatible tools use)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from glassbox.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES_DIR = DEPLOY / "prometheus" / "rules"
PROMETHEUS_RULE = DEPLOY / "k8s" / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "glassbox-dashboard.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
RATE_INTERVAL = "5m"
"""What `$__rate_interval` stands for when a dashboard query is parsed outside Grafana."""


def exported() -> tuple[Metrics, set[str]]:
    """The server's metrics and every sample name they can expose."""
    metrics = Metrics()
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return metrics, names


def _operands(expr: Any) -> list[Any]:
    if isinstance(expr, promql_parser.MatrixSelector):
        return [expr.vector_selector]
    if isinstance(expr, promql_parser.BinaryExpr):
        return [expr.lhs, expr.rhs]
    if isinstance(expr, promql_parser.Call):
        return list(expr.args)
    if isinstance(expr, promql_parser.AggregateExpr):
        return [expr.expr] + ([expr.param] if expr.param is not None else [])
    if isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
        return [expr.expr]
    assert isinstance(
        expr, promql_parser.VectorSelector | promql_parser.NumberLiteral | promql_parser.StringLiteral
    ), type(expr)
    return []


def subexpressions(expr: Any) -> list[Any]:
    """The expression and every expression inside it."""
    return [expr, *(sub for operand in _operands(expr) for sub in subexpressions(operand))]


def selectors(expr: Any) -> list[Any]:
    """Every vector selector of a parsed expression (those inside range selectors included)."""
    if isinstance(expr, promql_parser.VectorSelector):
        return [expr]
    return [found for operand in _operands(expr) for found in selectors(operand)]


def selected(expr: Any) -> set[str]:
    """Metric names of every vector selector in a parsed expression."""
    return {selector.name for selector in selectors(expr)}


def _is_scalar(expr: Any) -> bool:
    while isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        expr = expr.expr
    return isinstance(expr, promql_parser.NumberLiteral)


def _meet(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    return a if b is None else a & b


def kept_labels(expr: Any) -> frozenset[str] | None:
    """The labels every series of the expression's result can carry; None where it keeps whatever its
    input series carry (a bare selector, `rate(...)`). Follows Prometheus' rules: `by` keeps its labels,
    one-to-one matching `on (...)` keeps only those, `group_left` keeps the left side's, `or` only
    the labels both sides have."""
    if isinstance(expr, promql_parser.VectorSelector | promql_parser.MatrixSelector):
        return None
    if isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
        return kept_labels(expr.expr)
    if isinstance(expr, promql_parser.AggregateExpr):
        if str(expr.op) in ("topk", "bottomk", "limitk", "limit_ratio"):
            return kept_labels(expr.expr)  # they select series and keep their labels
        modifier = expr.modifier
        if modifier is None:
            return frozenset()
        if modifier.type == promql_parser.AggModifierType.By:
            return frozenset(modifier.labels)
        inner = kept_labels(expr.expr)
        return None if inner is None else inner - set(modifier.labels)
    if isinstance(expr, promql_parser.Call):
        vectors = [arg for arg in expr.args if not _is_scalar(arg)]
        if not vectors or isinstance(vectors[0], promql_parser.StringLiteral):
            return frozenset()
        inner = kept_labels(vectors[0])
        if expr.func.name == "histogram_quantile" and inner is not None:
            return inner - {"le"}
        return inner
    assert isinstance(expr, promql_parser.BinaryExpr), type(expr)
    op = str(expr.op)
    if _is_scalar(expr.rhs):
        return kept_labels(expr.lhs)
    if _is_scalar(expr.lhs):
        return kept_labels(expr.rhs)
    if op in ("and", "unless"):
        return kept_labels(expr.lhs)
    if op == "or":
        return _meet(kept_labels(expr.lhs), kept_labels(expr.rhs))
    modifier = expr.modifier
    card = modifier.card if modifier is not None else promql_parser.VectorMatchCardinality.OneToOne
    if card == promql_parser.VectorMatchCardinality.ManyToOne:
        lhs = kept_labels(expr.lhs)
        return None if lhs is None else lhs | set(modifier.group_labels or ())
    if card == promql_parser.VectorMatchCardinality.OneToMany:
        rhs = kept_labels(expr.rhs)
        return None if rhs is None else rhs | set(modifier.group_labels or ())
    lhs = kept_labels(expr.lhs)
    matching = modifier.matching if modifier is not None else None
    if matching is None:
        return lhs
    if matching.type == promql_parser.LabelModifierType.Include:
        return _meet(lhs, frozenset(matching.labels))
    return None if lhs is None else lhs - set(matching.labels)


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def prometheus_rules() -> dict[str, dict[str, Any]]:
    """The PrometheusRule resources of deploy/k8s, by name."""
    documents = [d for d in yaml.safe_load_all(PROMETHEUS_RULE.read_text()) if d]
    return {d["metadata"]["name"]: d for d in documents}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel, rows included, and the panels a collapsed row holds."""
    return [panel for top in dashboard()["panels"] for panel in (top, *top.get("panels", []))]


def dashboard_exprs() -> dict[str, list[str]]:
    """The queries of every panel, by panel title."""
    return {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in dashboard_panels()}


def parse_dashboard_expr(expr: str) -> Any:
    return promql_parser.parse(expr.replace("$__rate_interval", RATE_INTERVAL))
