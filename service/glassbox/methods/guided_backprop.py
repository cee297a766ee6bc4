"""Guided backpropagation and deconvnet: the input gradient with a modified rule at every ReLU.

* Guided backprop (Springenberg et al. 2015, "Striving for Simplicity: The All Convolutional Net"):
  a ReLU passes back only positive gradients, and only where its input was positive.
* Deconvnet (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks"): a ReLU
  passes back the positive gradients wherever they are, ignoring its forward input.

The rules are applied per call to `nn.ReLU` modules (in-place ones included) by `hooks.ReluRules`, so
a concurrent call on the same model keeps the true gradient.
"""

from __future__ import annotations

from glassbox.common.hooks import ReluRule
from glassbox.methods.gradients import GradientMethod


class GuidedBackprop(GradientMethod):
    """Gradient with max(g, 0) · [x > 0] at every ReLU."""

    name = "guided_backprop"
    smoothable = True
    relu_rule = ReluRule.GUIDED


class Deconvnet(GradientMethod):
    """Gradient with max(g, 0) at every ReLU."""

    name = "deconvnet"
    smoothable = True
    relu_rule = ReluRule.DECONV
