"""pytorch-grad-cam references for the CAM tests: its maps for a batch and per-image targets, and the
normalisation it applies (ReLU'd CAM min-max scaled per image), so that ours can be compared with it."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

VIT_GRID = 8
"""The tiny ViT's patch grid at 64×64 input (8×8 patches): written down here for the reference only."""


def vit_reshape(tokens: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's reshape_transform for the tiny ViT: drop the class token, tokens → grid."""
    patches = tokens[:, 1:, :]
    return patches.reshape(tokens.shape[0], VIT_GRID, VIT_GRID, tokens.shape[2]).permute(0, 3, 1, 2)


def grad_cam_maps(
    cam_class: type,
    network: torch.nn.Module,
    layer: torch.nn.Module,
    images: torch.Tensor,
    targets: list[int],
    *,
    vit: bool = False,
) -> np.ndarray:
    """pytorch-grad-cam's output for one target per image."""
    with cam_class(
        model=network, target_layers=[layer], reshape_transform=vit_reshape if vit else None
    ) as cam:
        return cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])


def min_max(maps: np.ndarray) -> np.ndarray:
    """Each [H, W] map scaled to [0, 1], as pytorch-grad-cam scales its output."""
    low = maps.min(axis=(-2, -1), keepdims=True)
    high = maps.max(axis=(-2, -1), keepdims=True)
    assert (high > low).all(), "a CAM is constant: the comparison would prove nothing"
    return (maps - low) / (high - low)
