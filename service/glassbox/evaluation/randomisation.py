"""The model-parameter randomisation sanity check (Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018,
"Sanity checks for saliency maps"). A map that explains the model must change when the model's learned
weights are destroyed. Layers are randomised from the top (the classifier) down:

* cascading: after step k the top k parameterised layers are all randomised;
* independent: at step k only layer k is randomised, the others keep their trained weights.

After each step the maps of the randomised model are compared with the original maps by the Spearman
rank correlation of |map| and by SSIM of |map| scaled to [0, 1]. A method passes when its similarity
after full cascading randomisation is low.

The served model is never touched: the check randomises a deep copy, so concurrent calls see the trained
weights. Weights are redrawn from PyTorch's default initialisation ranges (uniform ±1/√fan_in) with the
job's generator; normalisation layers are reset to the identity (weight 1, bias 0, running mean 0 and
variance 1), as `reset_parameters` does.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import scipy.stats
import torch
from skimage.metrics import structural_similarity
from torch import nn

from glassbox.backends.torch_backend import TorchModel

NORMALISATION_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def parameterised_layers(net: nn.Module) -> list[str]:
    """Names of the modules that hold parameters of their own, top (last) layer first."""
    names = [
        name for name, module in net.named_modules() if any(True for _ in module.parameters(recurse=False))
    ]
    return names[::-1]


def _fan_in(module: nn.Module, parameter: torch.Tensor) -> int:
    if parameter.dim() >= 2:
        return parameter[0].numel()
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
        return weight[0].numel()
    return parameter.numel()


@torch.no_grad()
def randomise_layer(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise one module's own parameters in place (see the module docstring)."""
    if isinstance(module, NORMALISATION_LAYERS):
        for name, parameter in module.named_parameters(recurse=False):
            parameter.fill_(1.0 if name == "weight" else 0.0)
        for name, buffer in module.named_buffers(recurse=False):
            if name == "running_mean":
                buffer.zero_()
            elif name == "running_var":
                buffer.fill_(1.0)
        return
    for parameter in module.parameters(recurse=False):
        bound = 1.0 / math.sqrt(max(1, _fan_in(module, parameter)))
        values = torch.rand(parameter.shape, generator=generator, dtype=torch.float32) * 2 * bound - bound
        parameter.copy_(values.to(parameter.device, parameter.dtype))


def randomised_models(
    model: TorchModel, generator: torch.Generator, *, cascading: bool
) -> Iterator[tuple[str, TorchModel]]:
    """(layer, model) after each randomisation step, top layer first. Every step changes one deep copy of
    the network (never the served one) and wraps it afresh, since a TorchModel derives modules from its
    network when built (the BatchNorm-folded gradient network)."""
    net = copy.deepcopy(model.module.net)
    trained = copy.deepcopy(net.state_dict())
    for name in parameterised_layers(net):
        if not cascading:
            net.load_state_dict(trained)
        randomise_layer(net.get_submodule(name), generator)
        yield (
            name,
            TorchModel(model.name, model.version, model.config, model.weights_digest, net, model.device),
        )


def spearman(original: torch.Tensor, randomised: torch.Tensor) -> torch.Tensor:
    """float [N]: Spearman rank correlation of |original_i| and |randomised_i| (0 where a map is constant)."""
    scores = []
    for a, b in zip(original.flatten(1).abs().numpy(), randomised.flatten(1).abs().numpy(), strict=True):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            scores.append(0.0)
        else:
            scores.append(float(scipy.stats.spearmanr(a, b).statistic))
    return torch.tensor(scores, dtype=torch.float32)


def _unit_scale(values: np.ndarray) -> np.ndarray:
    peak = float(np.abs(values).max())
    return np.abs(values) / peak if peak > 0 else np.zeros_like(values)


def ssim(original: torch.Tensor, randomised: torch.Tensor) -> torch.Tensor:
    """float [N]: SSIM (scikit-image, 7×7 window) of |map| / max |map| of both, data range 1."""
    return torch.tensor(
        [
            structural_similarity(
                _unit_scale(a.double().numpy()), _unit_scale(b.double().numpy()), data_range=1.0
            )
            for a, b in zip(original, randomised, strict=True)
        ],
        dtype=torch.float32,
    )
