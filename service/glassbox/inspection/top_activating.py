"""Top-activating examples (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional
Networks"): the dataset images that activate a channel or a unit most, the receptive-field patch around
the strongest position, and the gradient of that activation with respect to the patch's pixels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch

from glassbox.backends.torch_backend import TorchModel
from glassbox.common import pictures
from glassbox.common.capture import LayerCapture
from glassbox.common.layers import check_index
from glassbox.common.validation import check_range
from glassbox.core.errors import InvalidArgument
from glassbox.inspection.layers import batch_count, layer_batches, output_shape
from glassbox.inspection.receptive_field import Box, ReceptiveField, measure
from glassbox.models.datasets import LabelledImages

SUMMARY_MIN_SIDE = 64


class Ranking(StrEnum):
    MAX = "max"  # the channel's largest activation anywhere in the image
    MEAN = "mean"  # the channel's mean activation


@dataclass(frozen=True)
class TopActivating:
    """A checked request: a channel of `layer`, or one unit (channel, y, x) of it."""

    model: TorchModel
    images: LabelledImages
    layer: str
    channel: int
    unit: tuple[int, int] | None = None
    count: int = 9
    ranking: Ranking = Ranking.MAX
    max_count: int = 64
    """The operator's cap on `count` (`jobs.limits.inspection.max_top_examples`)."""

    def __post_init__(self) -> None:
        shape = output_shape(self.model, self.layer, "layer", (1, 3))
        check_index(self.channel, shape[0], "channel", "channel")
        if self.unit is not None:
            if len(shape) == 1:
                raise InvalidArgument("the layer's output is [C]: leave y and x unset", field="y")
            check_index(self.unit[0], shape[1], "y", "y")
            check_index(self.unit[1], shape[2], "x", "x")
        if len(self.images) < 1:
            raise InvalidArgument("the set has no images", field="images")
        check_range(self.count, 1, min(self.max_count, len(self.images)), "count")


@dataclass(frozen=True)
class Example:
    index: int
    activation: float
    y: int
    x: int
    patch: Box
    gradient: torch.Tensor  # [3, patch.height, patch.width]
    prediction: int


@dataclass(frozen=True)
class TopActivatingOutcome:
    examples: list[Example]
    activations: torch.Tensor  # [N], the ranking value of every image
    field: ReceptiveField
    summary: np.ndarray  # RGB uint8


def top_steps(spec: TopActivating) -> int:
    """Progress steps: one per forward batch, the receptive-field probe, the gradients."""
    return batch_count(len(spec.images)) + 2


def _scores(spec: TopActivating, report: Callable[[int, str], None]) -> tuple[torch.Tensor, ...]:
    """Per image: ranking value, strongest position (y, x) and predicted class."""
    values, ys, xs, predictions = [], [], [], []
    for batch in layer_batches(
        spec.model, spec.layer, spec.images.images, after_batch=lambda done: report(done, "activations")
    ):
        maps = batch.outputs[:, spec.channel].float()
        if maps.dim() == 1:
            maps = maps[:, None, None]
        if spec.unit is not None:
            y = torch.full((maps.shape[0],), spec.unit[0], device=maps.device)
            x = torch.full_like(y, spec.unit[1])
            value = maps[:, spec.unit[0], spec.unit[1]]
        else:
            value, flat = maps.flatten(1).max(1)
            y, x = flat // maps.shape[2], flat % maps.shape[2]
            if spec.ranking is Ranking.MEAN:
                value = maps.flatten(1).mean(1)
        values.append(value.cpu())
        ys.append(y.cpu())
        xs.append(x.cpu())
        predictions.append(batch.logits.argmax(1).cpu())
    return torch.cat(values), torch.cat(ys), torch.cat(xs), torch.cat(predictions)


def _gradients(spec: TopActivating, chosen: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """d activation(channel, y_i, x_i) / d pixels of each chosen image i: [K, 3, H, W]."""
    pixels = spec.images.images[chosen].to(spec.model.device).requires_grad_(True)
    with LayerCapture(spec.model, [spec.layer], need_logits=False) as capture, torch.enable_grad():
        outputs = capture.forward(pixels).layers[spec.layer][:, spec.channel]
        if outputs.dim() == 1:
            units = outputs
        else:
            rows = torch.arange(len(chosen), device=outputs.device)
            units = outputs[rows, ys.to(outputs.device), xs.to(outputs.device)]
        (gradient,) = torch.autograd.grad(units.sum(), pixels)
    return gradient.cpu()


def _summary(spec: TopActivating, examples: list[Example], field: ReceptiveField) -> np.ndarray:
    """Patches in a row, each centred in a receptive-field-sized grey slot, and their gradients below."""
    height, width = field.image_size if field.whole_image else (field.height, field.width)
    factor = pictures.magnification(max(height, width), SUMMARY_MIN_SIDE)
    patches: list[np.ndarray] = []
    gradients: list[np.ndarray] = []
    for example in examples:
        box = example.patch
        image = spec.images.images[example.index]
        crop = pictures.rgb(image[:, box.top : box.top + box.height, box.left : box.left + box.width])
        heat = pictures.diverging_tiles(example.gradient.sum(0)[None], 1)[0]
        for source, out in ((crop, patches), (heat, gradients)):
            slot = np.full((height, width, 3), 128, dtype=np.uint8)
            top, left = (height - box.height) // 2, (width - box.width) // 2
            slot[top : top + box.height, left : left + box.width] = source
            out.append(pictures.magnify(slot, factor))
    return pictures.grid(patches + gradients, len(examples))


def top_activating(
    spec: TopActivating, *, generator: torch.Generator, report: Callable[[int, str], None]
) -> TopActivatingOutcome:
    """Rank the set, measure the receptive field, and take each example's patch gradient.
    `report(step, message)` is called after each step."""
    batches = batch_count(len(spec.images))
    values, ys, xs, predictions = _scores(
        spec, lambda done, message: report(-(-done * batches // len(spec.images)), message)
    )
    order = torch.from_numpy((-values).numpy().argsort(kind="stable"))[: spec.count]
    field = measure(spec.model, spec.layer, generator)
    report(batches + 1, "receptive field")
    gradients = _gradients(spec, order, ys[order], xs[order])
    examples = []
    for rank, index in enumerate(order.tolist()):
        box = field.box(int(ys[index]), int(xs[index]))
        patch = gradients[rank][:, box.top : box.top + box.height, box.left : box.left + box.width]
        examples.append(
            Example(
                index=index,
                activation=float(values[index]),
                y=int(ys[index]),
                x=int(xs[index]),
                patch=box,
                gradient=patch.contiguous(),
                prediction=int(predictions[index]),
            )
        )
    report(batches + 2, "gradients")
    return TopActivatingOutcome(examples, values, field, _summary(spec, examples, field))
