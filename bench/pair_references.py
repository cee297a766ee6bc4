"""References for bench/attribution.py's PAIR and black-box rows, set up with the same model, input,
target and parameters as the Glassbox request.

* XRAI, guided integrated gradients, blur integrated gradients: the `saliency` package 0.2.1 (PAIR's
  implementation) through a `call_model_function` around the same network, its integration rows in
  batches of 10 (the batch both sides find fastest on a 2-core CPU).
* RISE, Sobol attribution, HSIC attribution have no maintained PyTorch implementation: the reference is
  a straightforward batched PyTorch one written here from each paper, with the same number of masked
  forward passes (batches of 64 through the eager module), its masks drawn in torch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import saliency.core as saliency
import torch
import torch.nn.functional as F

BATCH = 64
"""Masked images per forward in the black-box references (Captum's perturbations_per_eval in the others)."""
GRADIENT_BATCH = 10
"""Integration rows per call_model_function call of the saliency package."""
METHODS = ("xrai", "guided_integrated_gradients", "blur_integrated_gradients", "rise", "sobol", "hsic")


def params(method: str, samples: int, steps: int) -> dict[str, Any]:
    """The parameters both sides use for `method` (keyword names of the Glassbox params message)."""
    return {
        "xrai": {"steps": steps},
        "guided_integrated_gradients": {"steps": steps},
        "blur_integrated_gradients": {"steps": steps},
        "rise": {"masks": samples, "grid_size": 7, "probability": 0.5, "seed": 0},
        "sobol": {"grid_size": 8, "designs": max(2, samples // 66)},
        "hsic": {"grid_size": 8, "designs": samples, "seed": 0},
    }[method]


def reference(
    method: str, module: torch.nn.Module, image: torch.Tensor, target: int, samples: int, steps: int
) -> tuple[str, Callable[[], object]]:
    """(description, a callable computing the reference map) for one of METHODS."""
    p = params(method, samples, steps)
    x_hwc = image.permute(1, 2, 0).numpy()
    function = call_model_function(module, target)
    if method == "xrai":
        options = saliency.XRAIParameters(steps=steps)
        return "saliency XRAI (IG batch 10)", lambda: saliency.XRAI().GetMask(
            x_hwc, function, batch_size=GRADIENT_BATCH, extra_parameters=options
        )
    if method == "guided_integrated_gradients":

        def guided() -> object:
            with numpy_quantile_interpolation():
                return saliency.GuidedIG().GetMask(x_hwc, function, x_steps=steps)

        return "saliency GuidedIG", guided
    if method == "blur_integrated_gradients":
        return "saliency BlurIG (batch 10)", lambda: saliency.BlurIG().GetMask(
            x_hwc.astype(np.float64), function, steps=steps, batch_size=GRADIENT_BATCH
        )
    if method == "rise":
        return f"batched PyTorch RISE (batch {BATCH})", lambda: rise(module, image, target, **p)
    if method == "sobol":
        return f"batched PyTorch Sobol (batch {BATCH})", lambda: sobol(module, image, target, **p)
    return f"batched PyTorch HSIC (batch {BATCH})", lambda: hsic(module, image, target, **p)


@contextlib.contextmanager
def numpy_quantile_interpolation() -> Iterator[None]:
    """saliency 0.2.1's guided IG calls np.quantile(..., interpolation=...), a keyword NumPy 2 renamed
    `method` (same meaning) and removed: translate it while the package runs."""
    quantile = np.quantile

    def translated(*args: Any, interpolation: str | None = None, **kwargs: Any) -> Any:
        if interpolation is not None:
            kwargs["method"] = interpolation
        return quantile(*args, **kwargs)

    np.quantile = translated
    try:
        yield
    finally:
        np.quantile = quantile


def call_model_function(module: torch.nn.Module, target: int) -> Callable[..., dict[str, np.ndarray]]:
    def call(batch: np.ndarray, call_model_args: object = None, expected_keys: object = None) -> dict:
        x = torch.from_numpy(np.asarray(batch, dtype=np.float32)).permute(0, 3, 1, 2).requires_grad_(True)
        (gradient,) = torch.autograd.grad(module(x)[:, target].sum(), x)
        return {saliency.base.INPUT_OUTPUT_GRADIENTS: gradient.permute(0, 2, 3, 1).numpy()}

    return call


def scores(module: torch.nn.Module, image: torch.Tensor, masks: torch.Tensor, target: int) -> torch.Tensor:
    """The target's logit on image ⊙ mask for masks [N, H, W], BATCH at a time."""
    out = []
    with torch.inference_mode():
        for start in range(0, masks.shape[0], BATCH):
            out.append(module(image[None] * masks[start : start + BATCH, None])[:, target])
    return torch.cat(out).double()


def rise(
    module: torch.nn.Module, image: torch.Tensor, target: int, masks: int, grid_size: int, **p: Any
) -> object:
    _, height, width = image.shape
    generator = torch.Generator().manual_seed(p["seed"])
    cell = math.ceil(height / grid_size)
    grids = (torch.rand(masks, 1, grid_size, grid_size, generator=generator) < p["probability"]).float()
    up = F.interpolate(grids, size=((grid_size + 1) * cell,) * 2, mode="bilinear", align_corners=False)[:, 0]
    shifts = torch.randint(0, cell, (masks, 2), generator=generator)
    full = torch.stack(
        [up[n, dy : dy + height, dx : dx + width] for n, (dy, dx) in enumerate(shifts.tolist())]
    )
    probabilities = []
    with torch.inference_mode():
        for start in range(0, masks, BATCH):
            logits = module(image[None] * full[start : start + BATCH, None])
            probabilities.append(torch.softmax(logits, dim=1)[:, target])
    weights = torch.cat(probabilities)
    return torch.einsum("n,nhw->hw", weights, full) / (masks * p["probability"])


def sobol(module: torch.nn.Module, image: torch.Tensor, target: int, grid_size: int, designs: int) -> object:
    _, height, width = image.shape
    d = grid_size * grid_size
    ab = torch.quasirandom.SobolEngine(2 * d, scramble=False).draw(designs)
    a, b = ab[:, :d], ab[:, d:]
    c = []
    for i in range(d):
        ci = a.clone()
        ci[:, i] = b[:, i]
        c.append(ci)
    low = torch.cat([a, b, *c]).reshape(-1, 1, grid_size, grid_size)
    full = F.interpolate(low, size=(height, width), mode="nearest")[:, 0]
    f = scores(module, image, full, target)
    f_a, f_c = f[:designs], f[2 * designs :].reshape(d, designs)
    indices = ((f_a[None] - f_c) ** 2).mean(dim=1) / (2 * f_a.var())
    return F.interpolate(
        indices.reshape(1, 1, grid_size, grid_size).float(), size=(height, width), mode="nearest"
    )


def hsic(
    module: torch.nn.Module, image: torch.Tensor, target: int, grid_size: int, designs: int, seed: int
) -> object:
    _, height, width = image.shape
    d = grid_size * grid_size
    generator = torch.Generator().manual_seed(seed)
    strata = torch.stack([torch.randperm(designs, generator=generator) for _ in range(d)], dim=1)
    x = ((strata + torch.rand(designs, d, generator=generator)) / designs > 0.5).double()
    full = F.interpolate(
        x.reshape(-1, 1, grid_size, grid_size).float(), size=(height, width), mode="nearest"
    )[:, 0]
    y = scores(module, image, full, target)
    width_y = torch.quantile(torch.pdist(y[:, None]), 0.5)
    gram = torch.exp(-((y[:, None] - y[None, :]) ** 2) / (2 * width_y**2))
    centring = torch.eye(designs, dtype=torch.float64) - 1.0 / designs
    centred = centring @ gram @ centring
    values = (
        torch.stack([torch.sum((x[:, i, None] == x[None, :, i]).double() * centred) for i in range(d)])
        / (designs - 1) ** 2
    )
    return F.interpolate(
        values.reshape(1, 1, grid_size, grid_size).float(), size=(height, width), mode="nearest"
    )
