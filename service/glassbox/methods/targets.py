"""Which classes a call explains: explicit indices, labels, or the model's own top-k prediction.

Explicit targets are checked against the model before any computation, so a bad index or an unknown
label costs nothing; top-k targets are resolved from the logits the method computes anyway (gradient
methods take them from their own forward pass, so a top-k request needs no extra forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.backends.base import Model
from glassbox.core.errors import InvalidArgument


@dataclass(frozen=True)
class TargetSpec:
    """The classes to explain for one image (or every image). At most one field is set; none means top-1."""

    class_indices: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    top_k: int = 0

    @property
    def is_empty(self) -> bool:
        return not self.class_indices and not self.labels and self.top_k == 0


TOP_1 = TargetSpec(top_k=1)


class TargetSelector:
    """Validated target specs for a batch; `resolve(logits)` gives each image's class indices."""

    def __init__(
        self,
        model: Model,
        targets: TargetSpec,
        image_targets: tuple[TargetSpec, ...],
        num_images: int,
        *,
        explains_classes: bool = True,
    ) -> None:
        self.num_images = num_images
        if not explains_classes:
            if not targets.is_empty or image_targets:
                raise InvalidArgument(
                    "this method explains a neuron, not a class: leave targets and image_targets unset",
                    field="targets",
                )
            self._specs: list[TargetSpec | tuple[int, ...]] = [() for _ in range(num_images)]
            return
        if image_targets:
            if not targets.is_empty:
                raise InvalidArgument("set either targets or image_targets, not both", field="image_targets")
            if len(image_targets) != num_images:
                raise InvalidArgument(
                    f"image_targets has {len(image_targets)} entries for {num_images} images: one per image",
                    field="image_targets",
                )
            self._specs = [_checked(model, s, f"image_targets[{i}]") for i, s in enumerate(image_targets)]
        else:
            spec = _checked(model, targets, "targets")
            self._specs = [spec] * num_images

    @property
    def needs_logits(self) -> bool:
        """True when some image's targets depend on the prediction (top-k)."""
        return any(isinstance(spec, TargetSpec) for spec in self._specs)

    def resolve(self, logits: torch.Tensor | None) -> list[tuple[int, ...]]:
        """Class indices per image; `logits` [B, C] are needed only when `needs_logits`."""
        return self.resolve_rows(logits, range(self.num_images))

    def resolve_rows(self, logits: torch.Tensor | None, rows: range) -> list[tuple[int, ...]]:
        """Class indices for the images in `rows`; `logits` has one row per image of `rows`."""
        resolved: list[tuple[int, ...]] = []
        for position, row in enumerate(rows):
            spec = self._specs[row]
            if isinstance(spec, TargetSpec):
                if logits is None:
                    raise ValueError("top-k targets need the logits")
                resolved.append(tuple(int(i) for i in logits[position].topk(spec.top_k).indices))
            else:
                resolved.append(spec)
        return resolved


def _checked(model: Model, spec: TargetSpec, field: str) -> TargetSpec | tuple[int, ...]:
    """Explicit targets become a tuple of indices; top-k (or nothing) stays a spec to resolve later."""
    set_fields = [
        name
        for name, value in (
            ("class_indices", spec.class_indices),
            ("labels", spec.labels),
            ("top_k", spec.top_k),
        )
        if value
    ]
    if len(set_fields) > 1:
        raise InvalidArgument(
            f"set only one of class_indices, labels and top_k, got {set_fields}", field=field
        )
    classes = model.num_classes
    if spec.class_indices:
        for i, index in enumerate(spec.class_indices):
            if not 0 <= index < classes:
                raise InvalidArgument(
                    f"class index {index} is out of range 0..{classes - 1}",
                    field=f"{field}.class_indices[{i}]",
                )
        return _unique(spec.class_indices, f"{field}.class_indices")
    if spec.labels:
        positions = {label: i for i, label in enumerate(model.labels)}
        indices = []
        for i, label in enumerate(spec.labels):
            if label not in positions:
                raise InvalidArgument(
                    f"model {model.name!r} has no label {label!r}; GetModel lists its labels",
                    field=f"{field}.labels[{i}]",
                )
            indices.append(positions[label])
        return _unique(tuple(indices), f"{field}.labels")
    if not 0 <= spec.top_k <= classes:
        raise InvalidArgument(f"top_k must be in 1..{classes}, got {spec.top_k}", field=f"{field}.top_k")
    return spec if spec.top_k else TOP_1


def _unique(indices: tuple[int, ...], field: str) -> tuple[int, ...]:
    if len(set(indices)) != len(indices):
        raise InvalidArgument(f"targets must not repeat, got {list(indices)}", field=field)
    return indices
