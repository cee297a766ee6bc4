"""Grad-CAM element-wise: like HiResCAM, but each position's gradient × activation is ReLU'd before the
channel sum, so negative evidence in one channel does not cancel positive evidence in another.

pytorch-grad-cam's `GradCAMElementWise` (Gildenblat et al., pytorch-grad-cam 1.5.7), a variant of
Grad-CAM (Selvaraju et al. 2017) in the element-wise form of HiResCAM (Draelos & Carin 2020):
L = ReLU(Σ_c ReLU(∂score/∂A_c ⊙ A_c)).
"""

from __future__ import annotations

import torch

from glassbox.methods.cam import CamMethod


class GradCamElementWise(CamMethod):
    """Σ_c ReLU(g_c ⊙ A_c)."""

    name = "grad_cam_element_wise"

    def cam_image(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return (gradients * activations).clamp(min=0).sum(dim=1)
