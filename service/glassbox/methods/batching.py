"""Memory-budgeted batching shared by every method: how much one image costs in a pass, and a loop that
evaluates many derived inputs (perturbations, noisy copies, path points) in batches.

The budget itself (the `attribution.memory_budget_bytes` setting, or a quarter of the free memory) and the
batch-size cap live in `CallContext.rows_per_batch`; this module says what one row costs and runs the
batches. A row's cost is estimated from the layer output shapes the backend discovered at load time, so
no probing pass is needed; graphs that list no layers (ONNX, TorchScript) get a conservative multiple of
the input size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from glassbox.backends.base import LayerInfo, Model
from glassbox.core.call import CallContext

FLOAT32_BYTES = 4
LIVE_ACTIVATIONS_IN_INFERENCE = 3
"""Outputs alive at once in a no-grad forward: a layer's input, its output, and a residual branch."""
INFERENCE_INPUT_MULTIPLE = 16
"""Without layer shapes, one image's no-grad forward is taken to cost this many input sizes (resnet18's
largest activation is 5.3 input sizes; three of them alive at once is 16)."""
GRADIENT_INPUT_MULTIPLE = 128
"""Without layer shapes, one image's forward + backward is taken to cost this many input sizes (resnet18
keeps about 40 input sizes of activations for the backward pass, and builds their gradients beside them)."""


def input_bytes(model: Model) -> int:
    """Bytes of one float32 input image at the model's input size."""
    return 3 * model.config.input.height * model.config.input.width * FLOAT32_BYTES


def inference_bytes_per_row(model: Model) -> int:
    """Estimated peak memory of one image in a no-grad forward pass, its input included."""
    outputs = [_numel(info) * FLOAT32_BYTES for info in leaf_layers(model.layers)]
    if not outputs:
        return INFERENCE_INPUT_MULTIPLE * input_bytes(model)
    return input_bytes(model) + LIVE_ACTIVATIONS_IN_INFERENCE * max(outputs)


def gradient_bytes_per_row(model: Model) -> int:
    """Estimated memory of one image in a forward + backward pass: every leaf layer's output is kept for the
    backward pass and its gradient is built beside it, plus the input and its gradient."""
    outputs = [_numel(info) * FLOAT32_BYTES for info in leaf_layers(model.layers)]
    if not outputs:
        return GRADIENT_INPUT_MULTIPLE * input_bytes(model)
    return 2 * (input_bytes(model) + sum(outputs))


def leaf_layers(layers: list[LayerInfo]) -> list[LayerInfo]:
    """The layers that contain no other listed layer (a container's output is its last child's tensor)."""
    names = {info.name for info in layers}
    parents = {name.rsplit(".", 1)[0] for name in names if "." in name}
    return [info for info in layers if info.name not in parents]


def batch_ranges(total: int, rows: int) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges covering 0..total in steps of `rows` (the last one may be shorter)."""
    if rows < 1:
        raise ValueError(f"rows per batch must be positive, got {rows}")
    for start in range(0, total, rows):
        yield start, min(total, start + rows)


def evaluate_in_batches(
    call: CallContext,
    build: Callable[[int, int], torch.Tensor],
    total: int,
    rows: int,
    *,
    amplifying: bool = False,
) -> torch.Tensor:
    """Logits [total, classes] of `total` derived inputs, built lazily `rows` at a time.

    `build(start, stop)` returns the pixels [stop - start, 3, H, W] of inputs start..stop-1 (stop - start ≤
    rows; fewer while other calls wait for the device), so at most one batch of derived inputs exists at a
    time. Each batch goes through `call.forward` (`amplifying` passed on), which checks for
    cancellation first: a cancelled call stops within one batch.
    """
    if total < 1 or rows < 1:
        raise ValueError(f"nothing to evaluate: total and rows must be positive, got {total} and {rows}")
    outputs, start = [], 0
    while start < total:
        stop = min(total, start + call.unit_rows("forward", rows))
        outputs.append(call.forward(build(start, stop), amplifying=amplifying))
        start = stop
    return torch.cat(outputs)


def _numel(info: LayerInfo) -> int:
    return math.prod(info.output_shape)
