"""Gradient × input: the input pixels times the gradient of the target's pre-softmax score.

Shrikumar et al. 2016, "Not Just a Black Box: Learning Important Features Through Propagating
Activation Differences". Equals integrated gradients from a black baseline for a linear model.
"""

from __future__ import annotations

import torch

from glassbox.methods.gradients import GradientMethod


class GradientXInput(GradientMethod):
    """pixels · ∂ score_target / ∂ pixels."""

    name = "gradient_x_input"
    smoothable = True

    def combine(self, inputs: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return inputs * gradients
