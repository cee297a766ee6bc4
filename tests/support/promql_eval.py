"""A small instant-query PromQL evaluator for the tests: enough of Prometheus' semantics to evaluate the
alert rules and dashboard queries of deploy/ against the samples a real server exposes on /metrics
(selectors with label matchers, max/min/sum by/without, scalar arithmetic, comparisons that filter, and
vector matching with on/ignoring and group_left). Expressions are parsed by promql-parser; anything
outside this subset raises, so a rule the evaluator cannot judge fails loudly instead of passing."""

from __future__ import annotations

import operator
import re
from typing import Any

import promql_parser
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Vector = list[tuple[Labels, float]]

ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
COMPARISON = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def scrape(text: str, **target: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of a /metrics page, with the target labels Prometheus would attach (job, instance)."""
    return [
        (sample.name, {**sample.labels, **target}, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _matches(matcher: Any, labels: dict[str, str]) -> bool:
    value, op = labels.get(matcher.name, ""), matcher.op
    if op == promql_parser.MatchOp.Equal:
        return value == matcher.value
    if op == promql_parser.MatchOp.NotEqual:
        return value != matcher.value
    if op == promql_parser.MatchOp.Re:
        return re.fullmatch(matcher.value, value) is not None
    if op == promql_parser.MatchOp.NotRe:
        return re.fullmatch(matcher.value, value) is None
    raise NotImplementedError(op)


def _key(labels: Labels, names: list[str], include: bool) -> Labels:
    return frozenset((k, v) for k, v in labels if (k in names) == include)


class Evaluator:
    def __init__(self, samples: list[tuple[str, dict[str, str], float]]) -> None:
        self.samples = samples

    def query(self, text: str) -> Vector:
        result = self.eval(promql_parser.parse(text))
        assert isinstance(result, list), f"{text} is a scalar"
        return result

    def eval(self, expr: Any) -> Vector | float:
        if isinstance(expr, promql_parser.NumberLiteral):
            return float(expr.val)
        if isinstance(expr, promql_parser.ParenExpr):
            return self.eval(expr.expr)
        if isinstance(expr, promql_parser.VectorSelector):
            if expr.offset is not None:
                raise NotImplementedError("offset: the evaluator sees one instant")
            return [
                (frozenset(labels.items()), value)
                for name, labels, value in self.samples
                if name == expr.name and all(_matches(m, labels) for m in expr.matchers.matchers)
            ]
        if isinstance(expr, promql_parser.AggregateExpr):
            return self._aggregate(expr)
        if isinstance(expr, promql_parser.BinaryExpr):
            return self._binary(expr)
        raise NotImplementedError(type(expr))

    def _aggregate(self, expr: Any) -> Vector:
        functions = {"max": max, "min": min, "sum": sum}
        function = functions[str(expr.op)]
        inner = self.eval(expr.expr)
        assert isinstance(inner, list)
        modifier = expr.modifier
        groups: dict[Labels, list[float]] = {}
        for labels, value in inner:
            if modifier is None:
                key: Labels = frozenset()
            elif modifier.type == promql_parser.AggModifierType.By:
                key = _key(labels, list(modifier.labels), include=True)
            else:
                key = _key(labels, list(modifier.labels), include=False)
            groups.setdefault(key, []).append(value)
        return [(key, float(function(values))) for key, values in groups.items()]

    def _binary(self, expr: Any) -> Vector | float:
        op = str(expr.op)
        function = ARITHMETIC.get(op) or COMPARISON[op]
        comparison = op in COMPARISON
        lhs, rhs = self.eval(expr.lhs), self.eval(expr.rhs)
        if isinstance(lhs, float) and isinstance(rhs, float):
            return float(function(lhs, rhs))
        if isinstance(rhs, float):
            assert isinstance(lhs, list)
            if comparison:
                return [(labels, value) for labels, value in lhs if function(value, rhs)]
            return [(labels, float(function(value, rhs))) for labels, value in lhs]
        if isinstance(lhs, float):
            if comparison:
                return [(labels, value) for labels, value in rhs if function(lhs, value)]
            return [(labels, float(function(lhs, value))) for labels, value in rhs]
        return self._match(expr, lhs, rhs, function, comparison)

    def _match(self, expr: Any, lhs: Vector, rhs: Vector, function: Any, comparison: bool) -> Vector:
        modifier = expr.modifier
        matching = modifier.matching if modifier is not None else None
        names = list(matching.labels) if matching is not None else []
        include = matching is not None and matching.type == promql_parser.LabelModifierType.Include
        many_to_one = modifier is not None and modifier.card == promql_parser.VectorMatchCardinality.ManyToOne
        if modifier is not None and modifier.card == promql_parser.VectorMatchCardinality.OneToMany:
            raise NotImplementedError("group_right")
        right: dict[Labels, float] = {}
        for labels, value in rhs:
            key = _key(labels, names, include) if include else _key(labels, names, include=False)
            assert key not in right, f"many series on the right side match {dict(key)}"
            right[key] = value
        result: Vector = []
        for labels, value in lhs:
            key = _key(labels, names, include) if include else _key(labels, names, include=False)
            if key not in right:
                continue
            kept = labels if many_to_one or not include else key
            if comparison:
                if function(value, right[key]):
                    result.append((kept, value))
            else:
                result.append((kept, float(function(value, right[key]))))
        if not many_to_one:
            keys = [labels for labels, _ in result]
            assert len(keys) == len(set(keys)), "one-to-one matching found several series on the left"
        return result
