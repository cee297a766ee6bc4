"""Magnitude-constrained optimisation (MACO; Fel et al. 2023, "Unlocking Feature Visualization for Deeper
Networks with MAgnitude Constrained Optimization", NeurIPS) and feature accentuation (Hamblin et al. 2024,
"Feature Accentuation: Revealing 'What' Features Respond to in Natural Images").

MACO optimises only the phase of the image's Fourier spectrum; the magnitude stays fixed to natural-image
statistics, so the image keeps the energy distribution of a natural image however hard the optimiser
pushes, which is what makes feature visualisation legible on large networks. The `horama` package (the
authors' code) downloads an average ImageNet magnitude spectrum at run time; Glassbox downloads nothing,
so the magnitude is the power law those spectra follow, 1/f^decay_power with decay_power 1 by default
(natural images' amplitude spectra fall as 1/f: Field 1987, van der Schaaf & van Hateren 1996), the same
for the three decorrelated colour components (which the decorrelation gives equal variance). As in
horama, the phase is standardised, the spectrum taken back to pixels, standardised, recoloured by the
decorrelation matrix and squashed into [0, 1] by a sigmoid; each step scores random noisy crops
(`crops.RandomCrops`) with NAdam, and |∂loss/∂pixel| summed over the steps is the transparency map.

Feature accentuation starts from a real image instead: the whole spectrum (magnitude and phase) is the
parameter, set so that the image comes out (up to the sigmoid's saturation), its gradient scaled per
frequency by 1/f^decay_power, and the mean squared distance from that start, times `penalty`, is
subtracted from the objective, so the image changes only as much as the objective needs. (horama first
stretches the image's values to span [0, 1]; Glassbox takes the pixels as they are.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.capture import LayerCapture
from glassbox.common.validation import MIN_SIDE, check_learning_rate, check_range, check_steps
from glassbox.config import GenerativeJobLimits
from glassbox.core.errors import InvalidArgument
from glassbox.generative.crops import RandomCrops
from glassbox.generative.objectives import Objective
from glassbox.generative.optimise import StepSpan, evaluate, optimise
from glassbox.generative.parametrisations import COLOUR_MATRIX, spectrum_scale

MAX_CROPS = 64
"""Most crops one step may score (one batch through the model)."""

_STANDARDISE_EPSILON = 1e-4  # horama's, added to the standard deviation
_LOGIT_EPSILON = 1e-3  # horama's, keeps the logit of pixels at 0 or 1 finite


def standardise(values: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit (sample) standard deviation over all entries."""
    values = values - values.mean()
    return values / (values.std() + _STANDARDISE_EPSILON)


def recolour(raw: torch.Tensor) -> torch.Tensor:
    """Decorrelated colour [..., 3, H, W] → RGB in [0, 1]."""
    matrix = COLOUR_MATRIX.to(raw.device)
    return torch.sigmoid(torch.einsum("ij,...jhw->...ihw", matrix, raw))


def natural_magnitude(size: int, decay_power: float) -> torch.Tensor:
    """The fixed magnitude of a size × size image's real spectrum, [3, size, size // 2 + 1]:
    1/max(|f|, 1/size)^decay_power for each colour component."""
    return spectrum_scale(size, size, decay_power).expand(3, -1, -1).contiguous()


class MagnitudeConstrainedImage(nn.Module):
    """One image [1, 3, S, S] whose spectrum has a fixed magnitude and a trainable phase."""

    magnitude: torch.Tensor

    def __init__(self, magnitude: torch.Tensor, phase: torch.Tensor) -> None:
        super().__init__()
        self.size = magnitude.shape[-2]
        self.register_buffer("magnitude", magnitude, persistent=False)
        self.phase = nn.Parameter(phase.clone())

    def forward(self) -> torch.Tensor:
        spectrum = torch.polar(self.magnitude, standardise(self.phase))
        raw = standardise(torch.fft.irfft2(spectrum, s=(self.size, self.size)))
        return recolour(raw)[None]

    def constrain(self) -> None:
        """Every phase is allowed: nothing to project."""


class AccentuatedImage(nn.Module):
    """One image [1, 3, S, S] as its whole spectrum in decorrelated colour, starting at a given image, the
    gradient of each frequency scaled by size/max(|f|, 1/size)^decay_power (horama's `accentuation`)."""

    def __init__(self, image: torch.Tensor, decay_power: float) -> None:
        super().__init__()
        self.size = image.shape[-1]
        inverse = torch.linalg.inv(COLOUR_MATRIX.to(image.device))
        logits = torch.log((image + _LOGIT_EPSILON) / (1.0 - image + _LOGIT_EPSILON))
        spectrum = torch.fft.rfft2(torch.einsum("ij,jhw->ihw", inverse, logits))
        self.spectrum = nn.Parameter(torch.view_as_real(spectrum).clone())
        scale = (spectrum_scale(self.size, self.size, decay_power) * self.size).to(image.device)
        self.spectrum.register_hook(lambda grad: grad * scale[..., None])

    def forward(self) -> torch.Tensor:
        raw = torch.fft.irfft2(torch.view_as_complex(self.spectrum), s=(self.size, self.size))
        return recolour(raw)[None]

    def constrain(self) -> None:
        """Every spectrum is allowed: nothing to project."""


@dataclass(frozen=True)
class Accentuation:
    """Feature accentuation of `image` [3, size, size] in [0, 1]."""

    image: torch.Tensor
    penalty: float = 1.0
    decay_power: float = 1.5

    def __post_init__(self) -> None:
        check_range(self.penalty, 0.0, 1e6, "accentuation.penalty")
        check_range(self.decay_power, 0.0, 4.0, "accentuation.decay_power")


@dataclass(frozen=True)
class MacoVisualisation:
    """A checked MACO request; `objective` must already be bound to `model`. The defaults are horama's
    (its `box_size=(0.20, 0.25)` draws crop sides from [0.25, 0.30]; its noise 0.05 is on a value range
    5 wide, 0.01 on pixels in [0, 1])."""

    model: TorchModel
    objective: Objective
    size: int
    steps: int = 1000
    learning_rate: float = 1.0
    crops: int = 6
    crop_size_min: float = 0.25
    crop_size_max: float = 0.30
    noise: float = 0.01
    decay_power: float = 1.0
    accentuation: Accentuation | None = None
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)
    """The operator's caps (`jobs.limits.generative`); the embedded defaults outside a server."""

    def __post_init__(self) -> None:
        check_range(self.size, MIN_SIDE, self.limits.max_side, "size")
        check_steps(self.steps, self.limits)
        check_learning_rate(self.learning_rate, self.limits)
        check_range(self.crops, 1, MAX_CROPS, "crops")
        check_range(self.crop_size_min, 0.05, 1.0, "crop_size_min")
        check_range(self.crop_size_max, self.crop_size_min, 1.0, "crop_size_max")
        check_range(self.noise, 0.0, 1.0, "noise")
        check_range(self.decay_power, 0.0, 4.0, "decay_power")
        expected = (3, self.size, self.size)
        if self.accentuation is not None and tuple(self.accentuation.image.shape) != expected:
            shape = list(self.accentuation.image.shape)
            raise InvalidArgument(
                f"the image must be {list(expected)}, got {shape}", field="accentuation.image"
            )

    @staticmethod
    def default_size(model: TorchModel, limits: GenerativeJobLimits) -> int:
        """Four times the model's larger input side, at most `limits.max_side`."""
        return min(4 * max(model.config.input.height, model.config.input.width), limits.max_side)


@dataclass(frozen=True)
class MacoImage:
    """The image [3, S, S] in [0, 1] and transparency map [3, S, S] (CPU), the objective per step
    (averaged over the step's crops), and the objective before and after on the nine noiseless crops of
    `RandomCrops.grid` (averaged): the image as the optimisation sees it."""

    image: torch.Tensor
    transparency: torch.Tensor
    curve: list[float]
    initial_objective: float
    final_objective: float


def start(
    spec: MacoVisualisation, generator: torch.Generator
) -> MagnitudeConstrainedImage | AccentuatedImage:
    """The parametrised image the optimisation starts from: a random phase (normal, sd 1, drawn on the
    CPU from `generator`) under the natural magnitude, or the accentuated image."""
    device = spec.model.device
    if spec.accentuation is not None:
        return AccentuatedImage(spec.accentuation.image.to(device), spec.accentuation.decay_power)
    magnitude = natural_magnitude(spec.size, spec.decay_power)
    phase = torch.randn(tuple(magnitude.shape), generator=generator)
    return MagnitudeConstrainedImage(magnitude.to(device), phase.to(device))


def visualise_maco(spec: MacoVisualisation, *, generator: torch.Generator, progress: StepSpan) -> MacoImage:
    """Optimise the image; every random draw comes from `generator` (a CPU generator)."""
    model = spec.model
    height, width = model.config.input.height, model.config.input.width
    image = start(spec, generator)
    crops = RandomCrops(spec.crops, spec.crop_size_min, spec.crop_size_max, spec.noise, height, width)
    with torch.no_grad():
        anchor = image().detach()
    transparency = torch.zeros_like(anchor[0])
    curve: list[torch.Tensor] = []
    objective = spec.objective

    def accumulate(grad: torch.Tensor) -> None:
        transparency.add_(grad[0].abs())

    with LayerCapture(model, objective.layers, need_logits=objective.needs_logits) as capture:

        def seen(images: torch.Tensor) -> torch.Tensor:
            return objective(capture.forward(crops.grid(images[0]))).mean()[None]

        def score(images: torch.Tensor) -> torch.Tensor:
            images.register_hook(accumulate)
            value = objective(capture.forward(crops(images[0], generator))).mean()
            curve.append(value.detach())
            if spec.accentuation is not None:
                value = value - spec.accentuation.penalty * (images - anchor).square().mean()
            return value[None]

        initial = evaluate(seen, anchor)
        optimise(
            image,
            score,
            optimiser=torch.optim.NAdam(image.parameters(), lr=spec.learning_rate),
            steps=spec.steps,
            progress=progress,
        )
        with torch.no_grad():
            final_image = image().detach()
        final = evaluate(seen, final_image)
    return MacoImage(
        image=final_image[0].cpu(),
        transparency=transparency.cpu(),
        curve=torch.stack(curve).float().cpu().tolist(),
        initial_objective=float(initial[0]),
        final_objective=float(final[0]),
    )
