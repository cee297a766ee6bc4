"""Eigen-Grad-CAM: Eigen-CAM on the activations times their gradients, so the principal component is
that of the class's evidence rather than of the features alone.

pytorch-grad-cam's `EigenGradCAM` (Gildenblat et al., pytorch-grad-cam 1.5.7), built on Eigen-CAM
(Muhammad & Yeasin 2020, "Eigen-CAM: Class Activation Map using Principal Components"): the map is the
projection of ∂score/∂A ⊙ A on its first principal direction, with Eigen-CAM's SVD and sign convention
(`eigen_cam.principal_projection`).
"""

from __future__ import annotations

import torch

from glassbox.methods.cam import CamMethod
from glassbox.methods.eigen_cam import principal_projection


class EigenGradCam(CamMethod):
    """First principal component of g ⊙ A."""

    name = "eigen_grad_cam"

    def cam_image(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return principal_projection(gradients * activations)
