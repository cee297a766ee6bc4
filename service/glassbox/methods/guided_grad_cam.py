"""Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM, per input channel.

Selvaraju et al. 2017 (section 3.1): combines Grad-CAM's class-discriminative localisation with guided
backprop's pixel-level detail. One forward serves both: the backward to the layer uses the true
gradient, the backward to the input the guided rule (a per-call switch on the ReLUs). When no ReLU runs
after the layer (a last conv block before pooling and the classifier), the guided backward's gradient at
the layer is the true one, so one backward gives both (`CamMethod`). The CAM is upsampled bilinearly, as in
the paper (Captum's GuidedGradCam defaults to nearest).
"""

from __future__ import annotations

import torch

from glassbox.common.hooks import ReluRule
from glassbox.methods.cam import CamLayerParams, CamMethod


class GuidedGradCam(CamMethod):
    """guided backprop(x) · upsample(ReLU(Σ_c α_c A_c))."""

    name = "guided_grad_cam"
    map_channels = 3

    Params = CamLayerParams
    relu_rule = ReluRule.GUIDED

    def cam_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return gradients.mean(dim=(2, 3))
