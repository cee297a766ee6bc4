"""A learned image prior: a small variational autoencoder trained on a model's named image set, whose
decoder turns a latent vector into an image the set could contain.

Visualising a class or a channel by optimising pixels (even in a decorrelated Fourier basis) yields
images no data set contains; Nguyen et al. (2016, "Synthesizing the preferred inputs for neurons in
neural networks via deep generator networks") instead optimise the code of a generator trained on
natural images, so every candidate image lies near the data. Glassbox cannot download a generator, so
it trains one per model and named set (`prior_training`; the image_prior_training job kind): a
variational autoencoder (Kingma & Welling 2014), whose Gaussian latent space has no holes between
the training images, so an optimised code still decodes to a plausible image. `LatentImage` is the
image parametrisation that optimises that code.

Stored beside the model version: `<repository>/<model>/<version>/priors/<set>.safetensors` (encoder and
decoder weights; the metadata carries everything the loader needs) and `<set>.toml` (the same facts for
people: what it was trained on, seed, steps, reconstruction error).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as save_tensors
from torch import nn

from glassbox.core.errors import FailedPrecondition, InvalidArgument
from glassbox.core.reasons import Reason
from glassbox.generative.parametrisations import ImageParametrisation
from glassbox.models.datasets import resolves_inside
from glassbox.models.repository import ModelRepository

PRIORS_FOLDER = "priors"
"""The folder inside a model version's folder that holds its trained priors, one file pair per set."""

FORMAT = "glassbox.image_prior.vae.1"
"""The stored architecture; a file of another format is refused rather than misread."""

BASE_CHANNELS = 16
MAX_CHANNELS = 64
SMALLEST_SIDE = 4
"""The encoder halves the image until its shorter side is at most this; the decoder doubles it back."""


def _halvings(height: int, width: int) -> int:
    count = 0
    while min(height, width) > SMALLEST_SIDE:
        height, width, count = math.ceil(height / 2), math.ceil(width / 2), count + 1
    return count


def _channels(level: int) -> int:
    return min(BASE_CHANNELS * 2**level, MAX_CHANNELS)


class PriorNetwork(nn.Module):
    """Encoder (stride-2 3×3 convolutions to a Gaussian posterior) and decoder (nearest-neighbour
    upsampling and 3×3 convolutions, the last one straight to RGB, then a sigmoid) for images
    [B, 3, H, W] in [0, 1]; 16 channels at the first level, doubling to 64, down to 4×4 (at 64×64:
    220k parameters, 17 M multiply-adds per image forward).

    Upsampling by interpolation and convolving avoids the checkerboard artefacts of transposed
    convolutions (Odena et al. 2016), which an optimiser would otherwise exploit."""

    def __init__(self, height: int, width: int, latent_size: int) -> None:
        super().__init__()
        self.height, self.width, self.latent_size = height, width, latent_size
        levels = _halvings(height, width)
        down: list[nn.Module] = []
        channels = 3
        side_h, side_w = height, width
        for level in range(levels):
            down += [nn.Conv2d(channels, _channels(level), 3, stride=2, padding=1), nn.ReLU()]
            channels = _channels(level)
            side_h, side_w = math.ceil(side_h / 2), math.ceil(side_w / 2)
        self.code_shape = (channels, side_h, side_w)
        flat = channels * side_h * side_w
        self.encoder = nn.Sequential(*down, nn.Flatten())
        self.posterior = nn.Linear(flat, 2 * latent_size)
        self.expand = nn.Linear(latent_size, flat)
        up: list[nn.Module] = []
        for level in reversed(range(levels)):
            out = _channels(level - 1) if level > 0 else 3
            up += [nn.Upsample(scale_factor=2.0), nn.Conv2d(channels, out, 3, padding=1)]
            up += [nn.ReLU()] if level > 0 else []
            channels = out
        self.decoder = nn.Sequential(*up)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and log-variance, [B, latent_size] each."""
        mean, log_variance = self.posterior(self.encoder(images)).chunk(2, dim=1)
        return mean, log_variance.clamp(-12.0, 8.0)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] from latents [B, latent_size]."""
        code = F.relu(self.expand(latent)).reshape(-1, *self.code_shape)
        pixels = self.decoder(code)
        if pixels.shape[-2:] != (self.height, self.width):
            pixels = F.interpolate(
                pixels, size=(self.height, self.width), mode="bilinear", align_corners=False
            )
        return torch.sigmoid(pixels)

    @torch.no_grad()
    def initialise(self, generator: torch.Generator) -> None:
        """He-uniform weights and zero biases, drawn on the CPU from `generator` (the module's default
        initialisation would draw from torch's global generator, which concurrent jobs share)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                fan_in = module.weight[0].numel()
                bound = math.sqrt(6.0 / fan_in)
                values = torch.rand(module.weight.shape, generator=generator) * 2 * bound - bound
                module.weight.copy_(values)
                assert module.bias is not None
                module.bias.zero_()
        last = self.posterior
        last.weight.mul_(0.1)  # start with a near-prior posterior: small means, unit variances


@dataclass(frozen=True)
class PriorInfo:
    """What a stored prior was trained on and how well it reconstructs its set."""

    model: str
    version: str
    image_set: str
    images: int
    height: int
    width: int
    latent_size: int
    seed: int
    steps: int
    batch_size: int
    learning_rate: float
    kl_weight: float
    reconstruction_rmse: float
    """Root-mean-square pixel error of the set's images decoded from their posterior means."""
    latent_radius: float
    """Largest norm of a training image's posterior mean: `LatentImage` keeps its codes within it."""
    parameters: int

    def metadata(self) -> dict[str, str]:
        return {"format": FORMAT, **{key: str(value) for key, value in asdict(self).items()}}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> PriorInfo:
        values: dict[str, object] = {}
        for spec in fields(cls):
            text = metadata[spec.name]
            values[spec.name] = {"int": int, "float": float}.get(str(spec.type), str)(text)
        return cls(**values)  # type: ignore[arg-type]

    def toml(self) -> str:
        lines = [
            "# A learned image prior (glassbox.generative.image_prior); weights: the .safetensors beside.",
            f'format = "{FORMAT}"',
        ]
        for key, value in asdict(self).items():
            lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value!r}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LatentPrior:
    """A loaded prior: its network (eval mode, on the device it serves) and what it was trained on."""

    network: PriorNetwork
    info: PriorInfo

    def image(
        self,
        batch: int,
        height: int,
        width: int,
        *,
        init_sd: float,
        generator: torch.Generator,
        device: torch.device,
    ) -> LatentImage:
        """A batch of latent codes drawn from N(0, init_sd²) on the CPU from `generator`."""
        self.check_size(height, width)
        init = torch.randn(batch, self.info.latent_size, generator=generator) * init_sd
        return LatentImage(self, init.to(device))

    def check_size(self, height: int, width: int) -> None:
        """InvalidArgument naming `height` or `width` unless the size is the one the prior renders."""
        if (height, width) != (self.info.height, self.info.width):
            raise InvalidArgument(
                f"the latent prior renders {self.info.height}x{self.info.width} images (the size it was "
                f"trained at); leave height and width unset or set them to that",
                field="height" if height != self.info.height else "width",
            )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior means [B, latent_size] of images [B, 3, H, W] in [0, 1]."""
        with torch.no_grad():
            return self.network.encode(images.to(next(self.network.parameters()).device))[0]


class LatentImage(ImageParametrisation):
    """Images decoded from optimised latent codes [B, latent_size], each kept within the prior's
    latent radius (the largest code a training image has), so no code wanders off where the decoder
    has never been."""

    def __init__(self, prior: LatentPrior, init: torch.Tensor) -> None:
        super().__init__()
        self.prior = prior
        self.latent = nn.Parameter(init.clone())
        self.constrain()

    def forward(self) -> torch.Tensor:
        return self.prior.network.decode(self.latent)

    @torch.no_grad()
    def assign(self, image: torch.Tensor) -> None:
        """The codes whose decoding is nearest the images, as the encoder estimates them: the projection
        of `image` onto the prior (exact only for images the decoder can produce)."""
        self.latent.copy_(self.prior.network.encode(image)[0])
        self.constrain()

    @torch.no_grad()
    def constrain(self) -> None:
        norms = self.latent.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.latent.mul_((self.prior.info.latent_radius / norms).clamp(max=1.0))


def prior_file(version_folder: Path, image_set: str) -> Path:
    return version_folder / PRIORS_FOLDER / f"{image_set}.safetensors"


def save_prior(version_folder: Path, network: PriorNetwork, info: PriorInfo) -> Path:
    """Write the weights and the toml beside the version (each atomically: a reader sees the old file
    or the new one, never half of one); returns the weights' path."""
    folder = version_folder / PRIORS_FOLDER
    folder.mkdir(exist_ok=True)
    if not resolves_inside(folder, version_folder.resolve()):
        raise FailedPrecondition(
            f"{folder} is a symlink to outside the model version's folder", field="model"
        )
    weights = {name: value.detach().cpu().contiguous() for name, value in network.state_dict().items()}
    path = prior_file(version_folder, info.image_set)
    _write_atomically(path, save_tensors(weights, metadata=info.metadata()))
    _write_atomically(path.with_suffix(".toml"), info.toml().encode())
    return path


def store_prior(repository: ModelRepository, network: PriorNetwork, info: PriorInfo) -> Path:
    """Save the prior beside the model version it was trained for; returns the weights' path."""
    return save_prior(repository.entry(info.model, info.version).folder, network, info)


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, 0o644)  # mkstemp's 0600 would hide the prior from a server running as another user
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_prior_file(path: Path, device: torch.device) -> LatentPrior:
    """A stored prior; ValueError when the file is not one this code wrote."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path.name} is not a {FORMAT} prior (format {metadata.get('format')!r})")
        info = PriorInfo.from_metadata(metadata)
        state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (safe_open has no iterator)
    network = PriorNetwork(info.height, info.width, info.latent_size)
    network.load_state_dict(state)
    return LatentPrior(network.to(device).eval().requires_grad_(False), info)


def how_to_train(model: str, version: str, image_set: str) -> str:
    return (
        f"train one with `glassbox prior train --model {model} --version {version} --image-set {image_set}` "
        f"or submit an image_prior_training job (model {model!r}, version {version!r}, image_set "
        f"{image_set!r})"
    )


def find_prior(
    repository: ModelRepository, model: str, version: str, image_set: str, *, field: str
) -> LatentPrior:
    """The prior trained on `image_set` beside the model version, on the repository's device.

    InvalidArgument (naming `field`) when the model has no such named set; FailedPrecondition saying
    how to train one when the set exists but no prior was trained on it (or the stored file is broken).
    """
    entry = repository.entry(model, version)
    sets = repository.dataset_names(model)
    if not image_set:
        raise InvalidArgument(f"name the image set whose prior to use; the model has {sets}", field=field)
    if image_set not in sets:
        raise InvalidArgument(
            f"model {model!r} has no named set {image_set[:128]!r}; it has {sets}", field=field
        )
    path = prior_file(entry.folder, image_set)
    metadata = {"model": model, "version": entry.version, "dataset": image_set}
    if not path.is_file() or not resolves_inside(path, entry.folder.resolve()):
        raise FailedPrecondition(
            f"model {model!r} version {entry.version!r} has no latent prior trained on {image_set!r}; "
            + how_to_train(model, entry.version, image_set),
            field=field,
            reason=Reason.IMAGE_PRIOR_NOT_TRAINED,
            metadata=metadata,
        )
    try:
        return load_prior_file(path, repository.device)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise FailedPrecondition(
            f"the latent prior {path.name} of model {model!r} version {entry.version!r} cannot be read "
            f"({exc}); {how_to_train(model, entry.version, image_set)}",
            field=field,
            reason=Reason.IMAGE_PRIOR_NOT_TRAINED,
            metadata=metadata,
        ) from exc
