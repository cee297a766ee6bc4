"""Grad-CAM++: Grad-CAM with per-position weights that favour positions of positive gradient.

Chattopadhay et al. 2018, "Grad-CAM++: Improved Visual Explanations for Deep Convolutional Networks",
eq. 19 with the exponential-score closed form: a_ij = g² / (2g² + Σ_ab A_ab · g³), α_c = Σ_ij a_ij ·
ReLU(g_ij), with a = 0 where g = 0 (as pytorch-grad-cam computes it).
"""

from __future__ import annotations

import torch

from glassbox.methods.cam import CamMethod

EPSILON = 1e-6
"""Keeps a_ij finite where its denominator vanishes (pytorch-grad-cam uses the same value)."""


class GradCamPlusPlus(CamMethod):
    """α_c = Σ_ij a_ij · ReLU(∂score/∂A_c,ij)."""

    name = "grad_cam_plus_plus"

    def cam_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        squared = gradients.square()
        activation_sums = activations.sum(dim=(2, 3), keepdim=True)
        alpha = squared / (2 * squared + activation_sums * squared * gradients + EPSILON)
        alpha = torch.where(gradients != 0, alpha, torch.zeros_like(alpha))
        return (alpha * gradients.clamp(min=0)).sum(dim=(2, 3))
