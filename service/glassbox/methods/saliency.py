"""Saliency: the vanilla gradient of the target's pre-softmax score with respect to the input pixels.

Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks: Visualising Image
Classification Models and Saliency Maps". The map is signed and per channel; the paper's map is its
absolute maximum over channels (AGGREGATION_ABS_MAX).
"""

from __future__ import annotations

from glassbox.methods.gradients import GradientMethod


class Saliency(GradientMethod):
    """∂ score_target / ∂ pixels."""

    name = "saliency"
    smoothable = True
