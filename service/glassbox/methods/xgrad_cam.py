"""XGrad-CAM: Grad-CAM with channel weights derived from the sensitivity and conservation axioms.

Fu et al. 2020, "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs" (BMVC):
α_c = Σ_ij (A_c,ij / Σ_ab A_c,ab) · ∂score/∂A_c,ij, i.e. the gradient averaged with the activations as
weights instead of uniformly. As pytorch-grad-cam's `XGradCAM`, whose denominator carries ε = 1e-7.
"""

from __future__ import annotations

import torch

from glassbox.methods.cam import CamMethod

EPSILON = 1e-7
"""Added to each channel's activation sum (pytorch-grad-cam's value), so an all-zero channel weighs 0."""


class XGradCam(CamMethod):
    """α_c = Σ_ij g_c,ij · A_c,ij / (Σ_ab A_c,ab + ε)."""

    name = "xgrad_cam"

    def cam_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        sums = activations.sum(dim=(2, 3), keepdim=True)
        return (gradients * activations / (sums + EPSILON)).sum(dim=(2, 3))
