"""Training the learned image prior (`image_prior.PriorNetwork`) on a model's named image set.

A variational autoencoder (Kingma & Welling 2014) fitted by Adam to the set's images at the model's
input size: the loss per image is the squared reconstruction error summed over its pixels plus
`kl_weight` times the KL divergence of its posterior from N(0, I). Every random draw (the weights,
the order of the images, the posterior samples) comes from one CPU generator, so a seed gives the same
prior bit for bit on the CPU. Progress is reported once per step, with the first images of the set
and their reconstructions as the preview; the reporter raises Cancelled, so a cancelled training stops
within one step and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from glassbox.common.validation import check_learning_rate, check_range, check_steps
from glassbox.config import GenerativeJobLimits
from glassbox.core.errors import InvalidArgument
from glassbox.generative.image_prior import PriorInfo, PriorNetwork
from glassbox.generative.optimise import StepSpan, adam
from glassbox.render import encode_png

MAX_LATENT_SIZE = 256
MAX_BATCH_SIZE = 256
MIN_IMAGES = 2
PREVIEW_IMAGES = 8
"""Images of the set shown, with their reconstructions, in previews and in the result."""


@dataclass(frozen=True)
class PriorTraining:
    """A checked request to train a prior on `images` (the named set `image_set` of the model version)."""

    images: torch.Tensor
    """[N, 3, H, W] in [0, 1] at the model's input size."""
    model: str
    version: str
    image_set: str
    steps: int = 1500
    batch_size: int = 32
    latent_size: int = 32
    learning_rate: float = 0.004
    kl_weight: float = 0.25
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.images.shape[0] < MIN_IMAGES:
            raise InvalidArgument(
                f"the set has {self.images.shape[0]} images; a prior needs at least {MIN_IMAGES}",
                field="image_set",
            )
        check_steps(self.steps, self.limits)
        check_range(self.batch_size, 1, MAX_BATCH_SIZE, "batch_size")
        check_range(self.latent_size, 2, MAX_LATENT_SIZE, "latent_size")
        check_learning_rate(self.learning_rate, self.limits)
        check_range(self.kl_weight, 0.0, 1000.0, "kl_weight")


@dataclass(frozen=True)
class TrainedPrior:
    """The trained network (eval mode, CPU), what it was trained on, the reconstruction error before
    training, and the preview grid (first row: images of the set; second: their reconstructions)."""

    network: PriorNetwork
    info: PriorInfo
    initial_reconstruction_rmse: float
    reconstructions: torch.Tensor


def _reconstruction_rmse(network: PriorNetwork, images: torch.Tensor, batch: int = 64) -> float:
    total = 0.0
    with torch.no_grad():
        for start in range(0, images.shape[0], batch):
            chunk = images[start : start + batch]
            total += float(F.mse_loss(network.decode(network.encode(chunk)[0]), chunk, reduction="sum"))
    return (total / images.numel()) ** 0.5


def _latent_radius(network: PriorNetwork, images: torch.Tensor, batch: int = 64) -> float:
    with torch.no_grad():
        means = torch.cat(
            [network.encode(images[s : s + batch])[0] for s in range(0, images.shape[0], batch)]
        )
    return float(means.norm(dim=1).max())


def preview_grid(network: PriorNetwork, images: torch.Tensor) -> torch.Tensor:
    """[3, 2H, kW]: k images of the set above their reconstructions from the posterior means."""
    shown = images[:PREVIEW_IMAGES]
    with torch.no_grad():
        decoded = network.decode(network.encode(shown)[0])
    rows = [torch.cat(list(row), dim=2) for row in (shown, decoded)]
    return torch.cat(rows, dim=1).cpu()


def train_prior(spec: PriorTraining, *, seed: int, device: torch.device, progress: StepSpan) -> TrainedPrior:
    """Fit the prior on `device`; every random draw comes from one CPU generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    count, _, height, width = spec.images.shape
    network = PriorNetwork(height, width, spec.latent_size)
    network.initialise(generator)
    network.to(device).train()
    images = spec.images.to(device)
    initial_rmse = _reconstruction_rmse(network, images)
    optimiser = adam(network.parameters(), spec.learning_rate)
    order = torch.randperm(count, generator=generator)
    position = 0

    def preview() -> bytes:
        return encode_png(preview_grid(network, images))

    for step in range(1, spec.steps + 1):
        if position + spec.batch_size > count:
            order, position = torch.randperm(count, generator=generator), 0
        batch = images[order[position : position + spec.batch_size].to(device)]
        position += spec.batch_size
        noise = torch.randn(batch.shape[0], spec.latent_size, generator=generator).to(device)
        with torch.enable_grad():
            mean, log_variance = network.encode(batch)
            latent = mean + noise * torch.exp(0.5 * log_variance)
            reconstruction = F.mse_loss(network.decode(latent), batch, reduction="sum") / batch.shape[0]
            kl = 0.5 * (mean.square() + log_variance.exp() - 1.0 - log_variance).sum() / batch.shape[0]
            loss = reconstruction + spec.kl_weight * kl
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
        optimiser.step()
        progress.reporter.report(
            progress.offset + step,
            progress.total,
            float(loss.detach()),
            progress.message,
            preview=preview,
        )
    network.eval()
    info = PriorInfo(
        model=spec.model,
        version=spec.version,
        image_set=spec.image_set,
        images=count,
        height=height,
        width=width,
        latent_size=spec.latent_size,
        seed=seed,
        steps=spec.steps,
        batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        kl_weight=spec.kl_weight,
        reconstruction_rmse=_reconstruction_rmse(network, images),
        latent_radius=_latent_radius(network, images),
        parameters=sum(p.numel() for p in network.parameters()),
    )
    return TrainedPrior(
        network=network.cpu(),
        info=info,
        initial_reconstruction_rmse=initial_rmse,
        reconstructions=preview_grid(network, images.cpu()),
    )
