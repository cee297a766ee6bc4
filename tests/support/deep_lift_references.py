"""Networks on which Captum's `DeepLift` computes the rescale rule it means to, for the reference maps.

The function is unchanged; only how it is spelt moves, around three Captum limits:
* a ReLU module's output hook and the next max-pool's input hook sit on the same tensor, and the ReLU's
  runs first, so it sees the plain max-pool gradient, not the rule's (its maps then break
  summation-to-delta): a copy between them (`Separated`) gives each hook its own tensor;
* a module called twice per forward (torchvision's BasicBlock calls `self.relu` twice) makes Captum raise:
  each call gets its own ReLU;
* functional ReLUs (densenet121's `F.relu` after the last norm) get no rule: it becomes a module.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.densenet import DenseNet
from torchvision.models.resnet import BasicBlock


class Copy(nn.Module):
    """x.clone(): a linear operation that gives the next module a tensor of its own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


def _basic_block_forward(self: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu_out(out + identity)


def _densenet_forward(self: DenseNet, x: torch.Tensor) -> torch.Tensor:
    out = self.final_relu(self.features(x))
    return self.classifier(torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1))


def captum_deep_lift_network(network: nn.Module) -> nn.Module:
    """`network` (changed in place and returned) with the three rewrites above."""
    for module in list(network.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(module, name, nn.Sequential(Copy(), child))
        if isinstance(module, BasicBlock):
            module.relu_out = nn.ReLU()
            module.forward = types.MethodType(_basic_block_forward, module)
        if isinstance(module, DenseNet):
            module.final_relu = nn.ReLU()
            module.forward = types.MethodType(_densenet_forward, module)
    return network
