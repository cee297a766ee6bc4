"""HiResCAM: the layer's activations times their gradients, summed over the channels, position by position.

Draelos & Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional neural
networks": L = ReLU(Σ_c ∂score/∂A_c ⊙ A_c). Grad-CAM averages the gradient over the positions first, so
its map can show regions the model did not use; HiResCAM's element-wise product cannot (for a network
whose head is one linear layer after the CAM layer it is exactly the score's contribution per position).
As pytorch-grad-cam's `HiResCAM`.
"""

from __future__ import annotations

import torch

from glassbox.methods.cam import CamMethod


class HiResCam(CamMethod):
    """Σ_c g_c ⊙ A_c."""

    name = "hires_cam"

    def cam_image(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return (gradients * activations).sum(dim=1)
