"""KPCA-CAM: Eigen-CAM with kernel PCA, so the principal component may follow non-linear structure of
the activations; no gradients, and the same map for every target.

Karmani et al. 2024, "KPCA-CAM: Visual Explainability of Deep Computer Vision Models using Kernel PCA"
(arXiv:2410.00267). As pytorch-grad-cam's `KPCA_CAM`, which runs scikit-learn's `KernelPCA(n_components=1)`
on one image's positions × channels matrix centred over the positions: the kernel matrix K of the
positions is centred (K − 1K − K1 + 1K1, 1 the averaging matrix), its largest eigenpair (λ, v) gives the
component v · √λ, and the sign makes v's entry of largest magnitude positive (scikit-learn's `svd_flip`).
Kernels as scikit-learn's, with its defaults: γ = 1 / channels unless given, coef0 = 1, degree 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F

from glassbox.methods.cam import ActivationCam

MAX_GAMMA = 1e6
"""Largest γ accepted (a kernel with a larger one is constant to float precision on real activations)."""


class KpcaKernel(Enum):
    SIGMOID = "sigmoid"
    RBF = "rbf"
    POLYNOMIAL = "polynomial"
    LINEAR = "linear"
    COSINE = "cosine"


@dataclass(frozen=True)
class KpcaCamParams:
    layer: str = ""
    kernel: KpcaKernel = KpcaKernel.SIGMOID
    gamma: float | None = None


def kernel_matrix(x: torch.Tensor, kernel: KpcaKernel, gamma: float) -> torch.Tensor:
    """The kernel between the rows of x [positions, C] (scikit-learn's `pairwise_kernels`)."""
    if kernel is KpcaKernel.RBF:
        return torch.exp(-gamma * torch.cdist(x, x).square())
    if kernel is KpcaKernel.COSINE:
        unit = F.normalize(x, dim=1)
        return unit @ unit.T
    dot = x @ x.T
    if kernel is KpcaKernel.SIGMOID:
        return torch.tanh(gamma * dot + 1.0)
    if kernel is KpcaKernel.POLYNOMIAL:
        return (gamma * dot + 1.0) ** 3
    return dot


def first_kernel_component(x: torch.Tensor, kernel: KpcaKernel, gamma: float) -> torch.Tensor:
    """The positions' coordinates [positions] on the first kernel principal component (float64)."""
    k = kernel_matrix(x, kernel, gamma)
    k = k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean()
    values, vectors = torch.linalg.eigh(k)
    vector = vectors[:, -1]
    vector = vector * torch.sign(vector[vector.abs().argmax()])
    return vector * values[-1].clamp(min=0).sqrt()


class KpcaCam(ActivationCam):
    """The first kernel principal component of the activations, per image."""

    name = "kpca_cam"
    Params = KpcaCamParams

    def validate(self) -> None:
        super().validate()
        gamma = self.params.gamma
        if gamma is not None:
            self.require(
                math.isfinite(gamma) and 0.0 < gamma <= MAX_GAMMA,
                "gamma",
                f"must be in (0, {MAX_GAMMA:g}], got {gamma:g}",
            )

    def cam_image(self, activations: torch.Tensor) -> torch.Tensor:
        _n, channels, height, width = activations.shape
        gamma = self.params.gamma if self.params.gamma is not None else 1.0 / channels
        values = activations.detach().double()
        values = torch.where(values.isnan(), torch.zeros_like(values), values)
        maps = []
        for image in values:
            matrix = image.reshape(channels, -1).T
            matrix = matrix - matrix.mean(dim=0)
            maps.append(first_kernel_component(matrix, self.params.kernel, gamma).reshape(height, width))
        return torch.stack(maps).float()
