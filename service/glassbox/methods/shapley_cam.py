"""Shapley-CAM: Grad-CAM whose gradient is corrected by the second-order term of a Shapley value.

Cai et al. 2025, "CAMs as Shapley Value-based Explainers" (arXiv:2501.06261): the channel weights are
α_c = mean over positions of (g − ½ H·A)_c, with g = ∂score/∂A and H·A the Hessian of the score with
respect to the layer's output times that output (a Hessian-vector product, one more backward pass per
target). As pytorch-grad-cam's `ShapleyCAM`. Where nothing after the layer curves (ReLU networks: their
second derivative is zero almost everywhere) the map equals Grad-CAM's; GELU, softmax attention and
normalisation layers make them differ. The second derivative needs the autograd graph at the layer, so
the passes run in the call (not as mergeable units), with scaled dot-product attention on its math
kernel: the fused CPU kernels (flash attention) have no second derivative.
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from glassbox.methods.cam import CamMethod


class ShapleyCam(CamMethod):
    """α_c = mean_ij (g − ½ H·A)_c,ij."""

    name = "shapley_cam"
    needs_graph = True

    def forward_context(self) -> contextlib.AbstractContextManager[object]:
        return sdpa_kernel(SDPBackend.MATH)

    def layer_gradient(
        self, logits: torch.Tensor, one_hot: torch.Tensor, activation: torch.Tensor
    ) -> torch.Tensor:
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(
                logits, activation, grad_outputs=one_hot, retain_graph=True, create_graph=True
            )
            if not grad.requires_grad:  # the score is linear in the layer's output: H = 0
                return grad.detach()
            (hvp,) = torch.autograd.grad(
                grad, activation, grad_outputs=activation.detach(), retain_graph=True, allow_unused=True
            )
        self.call.count(backward=int(one_hot.any(dim=1).sum()))
        return grad.detach() if hvp is None else (grad - 0.5 * hvp).detach()

    def cam_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return gradients.mean(dim=(2, 3))
