"""LayerCAM: each position of the layer weighted by its own positive gradient.

Jiang et al. 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps for Localization" (IEEE
Transactions on Image Processing): L = ReLU(Σ_c ReLU(∂score/∂A_c) ⊙ A_c). Per-position weights keep the
detail of shallow layers, where Grad-CAM's averaged weights blur it. As pytorch-grad-cam's `LayerCAM`.
"""

from __future__ import annotations

import torch

from glassbox.methods.cam import CamMethod


class LayerCam(CamMethod):
    """Σ_c ReLU(g_c) ⊙ A_c."""

    name = "layer_cam"

    def cam_image(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return (gradients.clamp(min=0) * activations).sum(dim=1)
