"""Layer-wise relevance propagation (LRP): the target's score redistributed backwards, layer by layer, by
a rule per layer, down to the pixels.

Bach et al. 2015, "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
Propagation"; Montavon et al. 2019, "Layer-Wise Relevance Propagation: An Overview". The rules
(methods/lrp_rules.py) and composites (methods/lrp_composites.py) are Zennit 1.0's; the `captum` composite
is `captum.attr.LRP`'s defaults. The network is canonised first (methods/lrp_canonize.py: BatchNorm merged,
residual additions and functional layers made modules, anything without a rule refused by name).

An LRP map is an input gradient with modified backward rules, so it runs as one: one forward with graph
per chunk of images and one backward per target pass (`GradientMethod`), each chunk a `GradientUnit` of
the compute scheduler with the composite's rules attached for that forward only; every target of an
image shares the forward. The relevance at the output is 1 for the target (Zennit's convention; the
`captum` composite: the target's score), so a map sums to about that where the rules conserve relevance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from glassbox.backends.base import Model
from glassbox.common.hooks import CallRules
from glassbox.core.errors import FailedPrecondition
from glassbox.methods.gradients import GradientMethod
from glassbox.methods.lrp_canonize import LrpNetwork, lrp_network
from glassbox.methods.lrp_composites import PASS, LayerRules
from glassbox.methods.lrp_rules import AlphaBeta, Epsilon, Flat, Gamma, LinearRule, Norm, ZBox, ZPlus

ZENNIT_EPSILON = 1e-6
CAPTUM_EPSILON = 1e-9
MAX_PARAMETER = 1e3


class LrpComposite(StrEnum):
    EPSILON_PLUS_FLAT = "epsilon_plus_flat"
    EPSILON_GAMMA_BOX = "epsilon_gamma_box"
    EPSILON_ALPHA2_BETA1 = "epsilon_alpha2_beta1"
    UNIFORM = "uniform"
    CAPTUM = "captum"


class LrpRule(StrEnum):
    EPSILON = "epsilon"
    GAMMA = "gamma"
    Z_PLUS = "z_plus"
    ALPHA_BETA = "alpha_beta"
    FLAT = "flat"
    Z_BOX = "z_box"


@dataclass(frozen=True)
class LrpParams:
    composite: LrpComposite = LrpComposite.EPSILON_PLUS_FLAT
    rule: LrpRule | None = None  # UNIFORM only; None: epsilon
    first_rule: LrpRule | None = None  # UNIFORM only; None: `rule`
    epsilon: float | None = None  # None: 1e-6 (Zennit), 1e-9 for CAPTUM
    gamma: float = 0.25
    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: float = 1e-6


class Lrp(GradientMethod):
    """The relevance of every input pixel (per channel) under the chosen composite."""

    name = "lrp"
    smoothable = True
    Params = LrpParams

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        reason = super().unsupported_reason(model)
        if reason is None:
            try:
                lrp_network(model)
            except FailedPrecondition as refusal:
                reason = refusal.message
        return reason

    def validate(self) -> None:
        p = self.params
        uniform = p.composite is LrpComposite.UNIFORM
        for name in ("rule", "first_rule"):
            self.require(
                uniform or getattr(p, name) is None,
                name,
                "is only used with LRP_COMPOSITE_UNIFORM; leave it unset",
            )
        self.require(p.rule is not LrpRule.Z_BOX, "rule", "z_box needs pixel bounds: use it as first_rule")
        if p.epsilon is not None:
            self._check_range("epsilon", p.epsilon, 0.0, closed_low=True)
        self._check_range("gamma", p.gamma, 0.0, closed_low=True)
        self._check_range("alpha", p.alpha, 1.0, closed_low=True)
        self._check_range("beta", p.beta, 0.0, closed_low=True)
        self.require(
            abs(p.alpha - p.beta - 1.0) <= 1e-6, "beta", f"alpha − beta must be 1, got {p.alpha} − {p.beta}"
        )
        self._check_range("stabilizer", p.stabilizer, 0.0, closed_low=False, high=1.0)

    def _check_range(
        self, name: str, value: float, low: float, *, closed_low: bool, high: float = MAX_PARAMETER
    ) -> None:
        above = value >= low if closed_low else value > low
        bracket = "[" if closed_low else "("
        self.require(
            math.isfinite(value) and above and value <= high,
            name,
            f"must be in {bracket}{low}, {high}], got {value}",
        )

    def gradient_network(self) -> LrpNetwork:
        return lrp_network(self.model, merge_batchnorm=self.params.composite is not LrpComposite.CAPTUM)

    def call_rules(self) -> CallRules:
        return composite_rules(self.params, self.gradient_network().pixel_box)


def composite_rules(p: LrpParams, pixel_box: tuple[tuple[float, ...], tuple[float, ...]]) -> LayerRules:
    """The layer rules of `p`'s composite; `pixel_box` (low, high per channel) bounds the first input."""
    captum = p.composite is LrpComposite.CAPTUM
    epsilon = Epsilon(p.epsilon if p.epsilon is not None else CAPTUM_EPSILON if captum else ZENNIT_EPSILON)
    if captum:
        norm = Norm(epsilon.epsilon)
        return LayerRules(None, epsilon, epsilon, norm, norm, norm, norm, scale_by_output=True)
    s = p.stabilizer
    rules: dict[LrpRule, LinearRule] = {
        LrpRule.EPSILON: epsilon,
        LrpRule.GAMMA: Gamma(p.gamma, s),
        LrpRule.Z_PLUS: ZPlus(s),
        LrpRule.ALPHA_BETA: AlphaBeta(p.alpha, p.beta, s),
        LrpRule.FLAT: Flat(s),
        LrpRule.Z_BOX: ZBox(pixel_box[0], pixel_box[1], s),
    }
    first, conv = {
        LrpComposite.EPSILON_PLUS_FLAT: (rules[LrpRule.FLAT], rules[LrpRule.Z_PLUS]),
        LrpComposite.EPSILON_GAMMA_BOX: (rules[LrpRule.Z_BOX], rules[LrpRule.GAMMA]),
        LrpComposite.EPSILON_ALPHA2_BETA1: (None, rules[LrpRule.ALPHA_BETA]),
        LrpComposite.UNIFORM: (
            None if p.first_rule is None else rules[p.first_rule],
            rules[p.rule or LrpRule.EPSILON],
        ),
    }[p.composite]
    linear = conv if p.composite is LrpComposite.UNIFORM else epsilon
    return LayerRules(first, conv, linear, PASS, None, Norm(s), Norm(s))
