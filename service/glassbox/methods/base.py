"""The contract every attribution method implements (gradient, CAM and perturbation methods alike).

A method is one module with one class, named by its field in AttributeRequest's `method` oneof and
listed in `methods.catalogue.ATTRIBUTION_METHODS`::

    class Occlusion(AttributionMethod):
        name = "occlusion"
        Params = OcclusionParams          # frozen dataclass, defaults filled in
        needs_gradients = False           # True: torch backend only (supported_methods filters on it)
        smoothable = False                # True: a gradient method SmoothGrad may wrap (its `base`)

        def validate(self) -> None:       # optional: range checks, before any computation
            self.require(self.params.window > 0, "window", "must be positive")

        def explain(self, pixels, targets, logits):   # the work
            ...

Rules of the contract:

* **Construction.** A method object is built *per call*: `Method(model, params, call)`. It may keep
  per-call state freely (nothing is shared between calls or threads). `__init__` runs `validate()`,
  so every bad parameter is refused before the first pass. `self.require(ok, field, message)` raises
  InvalidArgument naming `<method>.<field>` (e.g. `smoothgrad.samples`).
* **Params.** A frozen, hashable dataclass whose field names are the proto message's field names.
  Enum fields are Python `Enum`s whose values are the proto value names, lower-case, without the enum
  prefix (INTEGRATION_RULE_GAUSS_LEGENDRE → "gauss_legendre"). The wire layer translates any params message
  generically (wire/method_params.py): an `optional` scalar left unset and an enum left at
  `*_UNSPECIFIED` take the dataclass default, so defaults live in one place, the dataclass. An image
  parameter is an `ImageInput`. The params are part of the canonical request the result cache keys on.
* **Inputs.** `explain(pixels, targets, logits)` gets pixels float32 [B, 3, H, W] in [0, 1] at the
  model's input size, on `model.device`; `targets[i]` is the tuple of class indices to explain for
  image i (empty for methods with `explains_classes = False`, which return one map per image); `logits`
  [B, C] are the model's scores on the unmodified pixels (already computed: do not recompute them).
* **Forward passes** of forward-only methods go through `self.call.forward(pixels) -> logits` (no
  gradients, CPU tensor, both backends, counts the passes and checks cancellation first): each is a unit
  of the compute scheduler (glassbox.serving), batched with other calls' passes. Batch sizes come from
  `self.call.rows_per_batch(bytes_per_row)`, which respects the memory budget setting, cut per batch by
  `self.call.unit_rows(kind, rows)` while other calls wait.
  Gradient methods use `self.call.count(forward=..., backward=...)` for the passes they run themselves.
* **Cancellation.** Call `self.call.check()` between batches; it raises Cancelled when the client left.
* **Output.** `explain` returns `maps[i][j]`: a `MapResult` for image i and target j: a signed float32
  map at input resolution, [3, H, W] (per channel) or [H, W], on the CPU, plus optional extras (CAM at
  layer resolution, superpixel segmentation and weights, convergence delta). Aggregation over channels,
  resampling to the original size and PNG rendering are done by the orchestrator (methods/service.py).
* **Template.** `run(pixels, selector)` does one forward (for the logits and the top-k targets) and
  calls `explain`. Gradient methods override `run` (methods/gradients.py) so that the forward pass of
  their graph also gives the logits: a gradient call costs one forward and one backward per target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from glassbox.backends.base import Model
from glassbox.core.call import CallContext
from glassbox.core.errors import InvalidArgument
from glassbox.core.images import ImageSource
from glassbox.methods.targets import TargetSelector


@dataclass(frozen=True)
class NoParams:
    """Parameters of a method that has none."""


@dataclass(frozen=True)
class MethodChoice:
    """A method named inside another method's parameters (SmoothGrad's base method) with its params."""

    name: str
    params: Any


@dataclass(frozen=True)
class ImageInput:
    """An image given as a method parameter (e.g. an IG baseline), kept as received so params stay hashable.

    Either `encoded` bytes, or raw pixels as (`dtype`, `shape`, little-endian `data`) like the wire Tensor.
    """

    encoded: bytes = b""
    dtype: str = ""
    shape: tuple[int, ...] = ()
    data: bytes = b""

    @classmethod
    def from_source(cls, source: ImageSource) -> ImageInput:
        if isinstance(source, bytes):
            return cls(encoded=source)
        array = np.ascontiguousarray(source)
        return cls(
            dtype=array.dtype.name,
            shape=tuple(array.shape),
            data=array.astype(array.dtype.newbyteorder("<")).tobytes(),
        )

    def source(self) -> ImageSource:
        if self.encoded:
            return self.encoded
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype).newbyteorder("<")).reshape(self.shape)


@dataclass
class MapResult:
    """One (image, target) map with the extras some methods have."""

    map: torch.Tensor  # float32 signed, [3, H, W] or [H, W] at the model's input size, CPU
    layer_map: torch.Tensor | None = None  # CAM methods: [h, w] at the layer's resolution
    convergence_delta: float | None = None  # integrated gradients
    segments: torch.Tensor | None = None  # LIME/KernelSHAP: int64 [H, W] superpixel ids
    segment_weights: torch.Tensor | None = None  # LIME/KernelSHAP: float32 [S]
    segmentation: str | None = None  # LIME/KernelSHAP: "slic", or "grid" where SLIC found one superpixel


@dataclass
class MethodOutput:
    """What `run` returns: logits on the unmodified pixels, the resolved targets, and the maps."""

    logits: torch.Tensor  # [B, C], CPU
    targets: list[tuple[int, ...]]
    maps: list[list[MapResult]]


class AttributionMethod(ABC):
    """Base of every method: validation at construction, then `run` → `explain`."""

    name: ClassVar[str]  # the AttributeRequest oneof field; each class in methods.catalogue sets it
    Params: ClassVar[type] = NoParams
    needs_gradients: ClassVar[bool] = True
    explains_classes: ClassVar[bool] = True
    map_channels: ClassVar[int] = 1
    """Channels of the maps `explain` returns: 3 for per-channel maps [3, H, W], 1 for [H, W]."""
    smoothable: ClassVar[bool] = False
    """True for a gradient method SmoothGrad can wrap (it has `attribute_rows` over a batch of inputs): the
    registry's `smoothable_methods` are SmoothGradParams' `base` choices."""

    def __init__(self, model: Model, params: Any, call: CallContext, *, field: str | None = None) -> None:
        if not isinstance(params, self.Params):
            raise TypeError(
                f"{type(self).__name__} takes {self.Params.__name__}, got {type(params).__name__}"
            )
        self.model = model
        self.params: Any = params  # an instance of the subclass's Params (checked above)
        self.call = call
        self.field = field or self.name
        self.validate()

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        """Why this model cannot run the method (None when it can). The default checks gradients only."""
        if cls.needs_gradients and not model.supports_gradients:
            return f"{cls.name} needs gradients, which the {model.backend_name} backend does not compute"
        return None

    def validate(self) -> None:  # noqa: B027 - optional: a method without parameters checks nothing
        """Check the parameters against their ranges and the settings' caps; `require` on each."""

    def applies_relu_rule(self) -> bool:
        """True when the call's maps come through a guided ReLU rule (guided backprop, deconvnet, Guided
        Grad-CAM, a guided neuron gradient, SmoothGrad over those): the response then says which of the
        model's activations the rule changed."""
        return False

    def perturbations_per_image(self) -> int:
        """Derived inputs a forward-only method evaluates per image (occluded, masked, sampled copies)."""
        return 0

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        """(rows evaluated forward only, rows evaluated forward + backward) of a call on `images` images
        with up to `targets` targets each: what the compute scheduler's cost estimate multiplies."""
        return images * (1 + self.perturbations_per_image()), 0

    def replaced_rows(self, images: int) -> int:
        """Rows a call on `images` images evaluates from a layer onwards with that layer's output replaced
        (Ablation-CAM), which the scheduler prices apart from whole forwards."""
        return 0

    def require(self, condition: bool, field: str, message: str) -> None:
        """InvalidArgument naming `<method>.<field>` unless `condition` holds."""
        if not condition:
            raise InvalidArgument(message, field=f"{self.field}.{field}")

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        """One forward for the logits and the targets, then `explain`."""
        logits = self.call.forward(pixels)
        targets = selector.resolve(logits)
        return MethodOutput(logits, targets, self.explain(pixels, targets, logits))

    @abstractmethod
    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        """maps[i][j]: the map of image i for its j-th target (one map per image if not explains_classes)."""
