"""The receptive field of a layer's positions: which input pixels can change the layer's output there.

It is measured, not derived from kernel sizes and strides (which a graph with branches makes
ambiguous): the bounding box of the pixels where the gradient of the position's activations (summed
over channels) is non-zero, over a batch of random probe images. The union over probes recovers the
pixels a max-pool or a dead ReLU hides on any single image. Measured at the central position and its
diagonal neighbour, the box and its step between neighbouring positions give every position's box.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.capture import LayerCapture

PROBE_IMAGES = 16


@dataclass(frozen=True)
class Box:
    """Input pixels rows top..top+height-1, columns left..left+width-1."""

    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class ReceptiveField:
    """Boxes of a layer's positions at the model's input size: a box of `height` × `width` whose corner
    moves `stride` pixels per position from `origin` (the box of position (0, 0), before clipping).
    `whole_image` when the field reaches past the image's border from the central position, or the
    layer has no spatial grid: every position then sees the whole image."""

    height: int
    width: int
    stride: tuple[int, int]
    origin: tuple[int, int]
    image_size: tuple[int, int]
    whole_image: bool

    def box(self, y: int, x: int) -> Box:
        """The field of position (y, x), clipped to the image."""
        rows, columns = self.image_size
        if self.whole_image:
            return Box(0, 0, rows, columns)
        top = self.origin[0] + y * self.stride[0]
        left = self.origin[1] + x * self.stride[1]
        bottom, right = min(top + self.height, rows), min(left + self.width, columns)
        top, left = max(top, 0), max(left, 0)
        return Box(top, left, bottom - top, right - left)


def _support(
    capture: LayerCapture, layer: str, probes: torch.Tensor, y: int, x: int
) -> tuple[int, int, int, int] | None:
    pixels = probes.clone().requires_grad_(True)
    outputs = capture.forward(pixels).layers[layer]
    (gradient,) = torch.autograd.grad(outputs[:, :, y, x].sum(), pixels)
    touched = gradient.abs().sum((0, 1)) > 0
    rows, columns = torch.nonzero(touched.any(1)), torch.nonzero(touched.any(0))
    if rows.numel() == 0:
        return None
    return int(rows.min()), int(columns.min()), int(rows.max()), int(columns.max())


def measure(model: TorchModel, layer: str, generator: torch.Generator) -> ReceptiveField:
    """The layer's receptive field, from probe images drawn with `generator` (a CPU generator)."""
    size = (model.config.input.height, model.config.input.width)
    shape = model.layer_info(layer).output_shape
    whole = ReceptiveField(size[0], size[1], (0, 0), (0, 0), size, whole_image=True)
    if len(shape) != 3:
        return whole
    grid_h, grid_w = shape[1], shape[2]
    cy, cx = grid_h // 2, grid_w // 2
    probes = torch.rand(PROBE_IMAGES, 3, *size, generator=generator).to(model.device)
    with LayerCapture(model, [layer], need_logits=False) as capture, torch.enable_grad():
        centre = _support(capture, layer, probes, cy, cx)
        ny, nx = min(cy + 1, grid_h - 1), min(cx + 1, grid_w - 1)
        neighbour = _support(capture, layer, probes, ny, nx) if (ny, nx) != (cy, cx) else centre
    if centre is None or neighbour is None:
        return whole
    top, left, bottom, right = centre
    if top == 0 or left == 0 or bottom == size[0] - 1 or right == size[1] - 1:
        return whole
    stride = (
        neighbour[0] - top if ny != cy else size[0],
        neighbour[1] - left if nx != cx else size[1],
    )
    origin = (top - cy * stride[0], left - cx * stride[1])
    return ReceptiveField(bottom - top + 1, right - left + 1, stride, origin, size, whole_image=False)
