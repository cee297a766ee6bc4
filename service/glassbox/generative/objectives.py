"""Objectives: differentiable quantities an optimisation maximises, one value per image.

An objective reads the layer outputs captured by `common.capture.LayerCapture` and/or the logits and returns a
tensor [B]. Objectives add, subtract and scale like numbers (`channel + 0.1 * diversity` builds a
`WeightedSum`), as in Lucent. `bind(model, field)` checks layer names and indices against the model
before any work is done, raising InvalidArgument that names the request field, and returns the
objective ready to evaluate on that model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from glassbox.backends.base import Model
from glassbox.common.capture import Activations
from glassbox.common.layers import check_index, layer_shape
from glassbox.core.errors import InvalidArgument


class Objective(ABC):
    """A quantity to maximise: `objective(activations)` → [B], one value per image."""

    @property
    @abstractmethod
    def layers(self) -> frozenset[str]:
        """Names of the layers whose outputs it reads."""

    @property
    def needs_logits(self) -> bool:
        return False

    @abstractmethod
    def bind(self, model: Model, field: str) -> Objective:
        """Check the objective against the model; InvalidArgument naming `field` (or a sub-field)."""

    @abstractmethod
    def __call__(self, activations: Activations) -> torch.Tensor: ...

    def __add__(self, other: Objective) -> WeightedSum:
        return WeightedSum(_terms(self) + _terms(other))

    def __mul__(self, weight: float) -> WeightedSum:
        return WeightedSum(tuple((w * float(weight), term) for w, term in _terms(self)))

    __rmul__ = __mul__

    def __neg__(self) -> WeightedSum:
        return self * -1.0

    def __sub__(self, other: Objective) -> WeightedSum:
        return self + (-other)


def _terms(objective: Objective) -> tuple[tuple[float, Objective], ...]:
    return objective.terms if isinstance(objective, WeightedSum) else ((1.0, objective),)


def class_index(model: Model, *, index: int | None = None, label: str | None = None, field: str) -> int:
    """A class given by index or by label, checked against the model's labels."""
    if label is not None:
        if label not in model.labels:
            raise InvalidArgument(
                f"model {model.name!r} has no class {label!r}; GetModel lists them", field=field
            )
        return model.labels.index(label)
    if index is None:
        raise InvalidArgument("a class index or label is required", field=field)
    check_index(index, model.num_classes, field, "class index")
    return index


def _spatial_position(size: int, reference: int, position: int | None) -> int:
    """A row/column given on the reference grid, kept at the same offset from the centre on `size`."""
    centre = size // 2
    if position is None:
        return centre
    return min(max(centre + position - reference // 2, 0), size - 1)


@dataclass(frozen=True)
class Neuron(Objective):
    """The activation of one unit: (channel, y, x) of a [C, H, W] output, or `channel` of a [C] one.

    y and x are positions on the layer's grid at the model's input size (None: the centre). When the
    transformed image makes the grid larger or smaller, the unit keeps its offset from the centre.
    """

    layer: str
    channel: int
    y: int | None = None
    x: int | None = None
    grid: tuple[int, int] = (1, 1)

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    def bind(self, model: Model, field: str) -> Neuron:
        shape = layer_shape(model, self.layer, f"{field}.layer")
        if len(shape) not in (1, 3):
            raise InvalidArgument(
                f"layer output is {list(shape)}; a neuron needs [C, H, W] or [C]", field=f"{field}.layer"
            )
        check_index(self.channel, shape[0], f"{field}.channel", "channel")
        if len(shape) == 1:
            if self.y is not None or self.x is not None:
                raise InvalidArgument("the layer's output is [C]: leave y and x unset", field=f"{field}.y")
            return self
        if self.y is not None:
            check_index(self.y, shape[1], f"{field}.y", "y")
        if self.x is not None:
            check_index(self.x, shape[2], f"{field}.x", "x")
        return replace(self, grid=(shape[1], shape[2]))

    def __call__(self, activations: Activations) -> torch.Tensor:
        output = activations.layers[self.layer]
        if output.dim() == 2:
            return output[:, self.channel]
        y = _spatial_position(output.shape[2], self.grid[0], self.y)
        x = _spatial_position(output.shape[3], self.grid[1], self.x)
        return output[:, self.channel, y, x]


@dataclass(frozen=True)
class Channel(Objective):
    """One channel's activation averaged over every position (Olah et al. 2017)."""

    layer: str
    channel: int

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    def bind(self, model: Model, field: str) -> Channel:
        shape = layer_shape(model, self.layer, f"{field}.layer")
        if len(shape) not in (1, 3):
            raise InvalidArgument(
                f"layer output is {list(shape)}; a channel needs [C, H, W] or [C]", field=f"{field}.layer"
            )
        check_index(self.channel, shape[0], f"{field}.channel", "channel")
        return self

    def __call__(self, activations: Activations) -> torch.Tensor:
        return activations.layers[self.layer][:, self.channel].flatten(1).mean(1)


@dataclass(frozen=True)
class LayerActivation(Objective):
    """A layer's mean squared activation: DeepDream's objective (Mordvintsev et al. 2015)."""

    layer: str

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    def bind(self, model: Model, field: str) -> LayerActivation:
        layer_shape(model, self.layer, f"{field}.layer")
        return self

    def __call__(self, activations: Activations) -> torch.Tensor:
        return activations.layers[self.layer].flatten(1).square().mean(1)


@dataclass(frozen=True)
class Logit(Objective):
    """A class's pre-softmax score."""

    index: int

    @property
    def layers(self) -> frozenset[str]:
        return frozenset()

    @property
    def needs_logits(self) -> bool:
        return True

    def bind(self, model: Model, field: str) -> Logit:
        check_index(self.index, model.num_classes, field, "class index")
        return self

    def __call__(self, activations: Activations) -> torch.Tensor:
        assert activations.logits is not None
        return activations.logits[:, self.index]


@dataclass(frozen=True)
class Probability(Logit):
    """A class's softmax probability."""

    def __call__(self, activations: Activations) -> torch.Tensor:
        assert activations.logits is not None
        return F.softmax(activations.logits, dim=1)[:, self.index]


@dataclass(frozen=True)
class Diversity(Objective):
    """Minus each image's mean cosine similarity between its Gram matrix at `layer` and the other
    images' (Olah et al. 2017): maximising it pushes a batch's images apart. Zero for one image."""

    layer: str

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    def bind(self, model: Model, field: str) -> Diversity:
        if len(layer_shape(model, self.layer, f"{field}.layer")) != 3:
            raise InvalidArgument("diversity needs a layer with a [C, H, W] output", field=f"{field}.layer")
        return self

    def __call__(self, activations: Activations) -> torch.Tensor:
        output = activations.layers[self.layer]
        batch = output.shape[0]
        if batch < 2:
            return output.new_zeros(batch)
        features = output.flatten(2)
        grams = F.normalize((features @ features.transpose(1, 2)).flatten(1), dim=1)
        similarity = grams @ grams.T
        return -(similarity.sum(1) - similarity.diagonal()) / (batch - 1)


@dataclass(frozen=True)
class WeightedSum(Objective):
    """Σ weight × term."""

    terms: tuple[tuple[float, Objective], ...]

    @property
    def layers(self) -> frozenset[str]:
        return frozenset().union(*(term.layers for _, term in self.terms))

    @property
    def needs_logits(self) -> bool:
        return any(term.needs_logits for _, term in self.terms)

    def bind(self, model: Model, field: str) -> WeightedSum:
        if not self.terms:
            raise InvalidArgument("a weighted sum needs at least one term", field=f"{field}.terms")
        return WeightedSum(
            tuple(
                (w, term.bind(model, f"{field}.terms[{i}].objective"))
                for i, (w, term) in enumerate(self.terms)
            )
        )

    def __call__(self, activations: Activations) -> torch.Tensor:
        return sum(
            (w * term(activations) for w, term in self.terms[1:]),
            self.terms[0][0] * self.terms[0][1](activations),
        )
