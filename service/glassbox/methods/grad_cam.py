"""Grad-CAM: a layer's activations weighted by their spatially averaged gradients.

Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization": L = ReLU(Σ_c α_c A_c), α_c = mean over positions of ∂score_target/∂A_c. With
`keep_negative` the ReLU is skipped (Captum's relu_attributions=False), so evidence against the class
shows too. The map is L upsampled bilinearly to the input; L itself is `layer_map`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.methods.cam import CamMethod


@dataclass(frozen=True)
class GradCamParams:
    layer: str = ""
    keep_negative: bool = False


class GradCam(CamMethod):
    """α_c = mean of the gradient over the layer's positions."""

    name = "grad_cam"
    Params = GradCamParams

    def validate(self) -> None:
        super().validate()
        self.apply_relu = not self.params.keep_negative

    def cam_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return gradients.mean(dim=(2, 3))
