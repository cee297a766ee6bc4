"""The machinery of the input-gradient methods: one forward, one backward per target, in chunks.

For a batch of images with k targets each, the graph is built once and back-propagated k times
(`retain_graph`), each time with one-hot output gradients that pick every image's j-th target at
once — the rows of a batch are independent in eval mode, so one backward serves all images. Captum
runs one forward and one backward per target (its issue #612). Rows are processed in chunks sized by
the memory budget (`CallContext.rows_per_batch`), so SmoothGrad and integrated gradients batch their
samples and steps without materialising them all (Captum's default takes all steps at once: #245).

Subclasses of `GradientMethod` choose the ReLU rule (`relu_rule`) and what to do with the gradient
(`combine`); SmoothGrad and integrated gradients override `attribute_rows` and reuse `gradient_rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from glassbox.backends.activations import activation_kinds
from glassbox.backends.base import Model
from glassbox.backends.torch_backend import TorchModel
from glassbox.common.hooks import CallRules, ReluRule
from glassbox.core.call import MAX_ROWS_PER_BATCH, CallContext
from glassbox.methods.base import AttributionMethod, MapResult, MethodOutput
from glassbox.methods.batching import gradient_bytes_per_row
from glassbox.methods.targets import TargetSelector
from glassbox.serving.execution import run_unit
from glassbox.serving.units import GradientResult, GradientUnit

TargetsOf = Callable[[torch.Tensor, range], list[tuple[int, ...]]]
"""(logits of a chunk, the chunk's row range) → the class indices to explain for each row."""


def for_rows(targets_of: TargetsOf, rows: range) -> Callable[[torch.Tensor], list[tuple[int, ...]]]:
    """`targets_of` bound to one chunk's rows: what a gradient unit calls with the chunk's logits."""
    return lambda logits: targets_of(logits, rows)


Consume = Callable[[range, torch.Tensor, int, list[int], torch.Tensor], None]
"""(chunk rows, chunk inputs, target pass j, chunk positions with a j-th target, their input gradient)."""


CPU_GRAPH_ROWS = 10
"""Most rows per forward-with-graph on a CPU. There the caches, not the memory, set the best batch: on
resnet18 at 224² (2 cores), 50 saliency rows took 2.18 s in one batch, 1.60 s in batches of 25 and
1.35 s in batches of 10 (Captum's NoiseTunnel at batch 10: 1.37 s). GPUs take the memory budget's batch."""


def graph_rows_per_batch(call: CallContext, model: Model, rows_per_item: int = 1) -> int:
    """How many items (each `rows_per_item` network rows) one forward-with-graph chunk takes."""
    cap = CPU_GRAPH_ROWS if model.device.type == "cpu" else MAX_ROWS_PER_BATCH
    return call.rows_per_batch(gradient_bytes_per_row(model) * rows_per_item, cap=cap)


def graph_unit_rows(call: CallContext, model: Model) -> int:
    """`graph_rows_per_batch`, cut to one unit's time while other calls wait for the device: for loops
    that run their own hooked forward + backward in the call (Guided Grad-CAM, neuron gradients, attacks)."""
    return call.unit_rows("gradient", graph_rows_per_batch(call, model))


class GradientMethod(AttributionMethod):
    """Base of the methods computed from input gradients of the target's pre-softmax score."""

    needs_gradients = True
    map_channels = 3
    relu_rule: ClassVar[ReluRule | None] = None

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        reason = super().unsupported_reason(model)
        if reason is None and cls.relu_rule is not None:
            reason = relu_rule_unsupported(cls.name, model)
        return reason

    def applies_relu_rule(self) -> bool:
        return self.relu_rule is not None

    @property
    def rows_per_input(self) -> int:
        """Network rows evaluated per input row (integrated gradients: its steps)."""
        return 1

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return 0, images * targets * self.rows_per_input

    def gradient_network(self) -> nn.Module:
        """The network the gradients go through: the BatchNorm-folded copy (LRP: its canonical copy)."""
        return self.model.input_gradient_network()

    def call_rules(self) -> CallRules | None:
        """Backward rules attached to `gradient_network` for each chunk's forward (LRP's); None: none."""
        return None

    def combine(self, inputs: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """Attributions [n, 3, H, W] from inputs [n, 3, H, W] and their gradients; default: the gradient."""
        return gradients

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        """The targets come from the logits of the graph's own forward: no extra pass, even for top-k."""
        x = pixels.to(self.model.device, torch.float32)
        logits_out: list[torch.Tensor] = []
        targets_out: list[tuple[int, ...]] = []

        def targets_of(logits: torch.Tensor, rows: range) -> list[tuple[int, ...]]:
            logits_out.append(logits.cpu())
            chosen = selector.resolve_rows(logits, rows)
            targets_out.extend(chosen)
            return chosen

        maps = self.gradient_rows(x, targets_of)
        return MethodOutput(
            torch.cat(logits_out), targets_out, [[MapResult(m.cpu()) for m in row] for row in maps]
        )

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        rows = self.attribute_rows(pixels.to(self.model.device, torch.float32), targets)
        return [[MapResult(m.cpu()) for m in row] for row in rows]

    def attribute_rows(self, inputs: torch.Tensor, targets: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """Attributions [k_i, 3, H, W] (on the device) for each input row and its targets."""
        rows = self.gradient_rows(inputs, lambda _logits, rows: targets[rows.start : rows.stop])
        return [torch.stack(row) for row in rows]

    def gradient_rows(self, inputs: torch.Tensor, targets_of: TargetsOf) -> list[list[torch.Tensor]]:
        """Per input row, per target: the `combine`d gradient."""
        out: list[list[torch.Tensor]] = [[] for _ in range(inputs.shape[0])]

        def consume(rows: range, x: torch.Tensor, _j: int, selected: list[int], grad: torch.Tensor) -> None:
            values = self.combine(x, grad)
            for r in selected:
                out[rows.start + r].append(values[r])

        self.backward_chunks(
            inputs.shape[0], lambda rows: inputs[rows.start : rows.stop], targets_of, consume
        )
        return out

    def backward_chunks(
        self,
        total: int,
        make_inputs: Callable[[range], torch.Tensor],
        targets_of: TargetsOf,
        consume: Consume,
    ) -> None:
        """Evaluate `total` network rows in chunks sized by the memory budget: per chunk, one forward of
        `make_inputs(rows)` with graph, then one backward per target pass, each handed to `consume`. Only
        the input and the ReLUs are looked at, so the BatchNorm-folded network serves. Each chunk is one
        `GradientUnit` of the compute scheduler, merged with other calls' chunks of the same network and
        ReLU rule (and backward rules)."""
        net = self.gradient_network()
        rules = self.call_rules()
        most = graph_rows_per_batch(self.call, self.model)
        start = 0
        while start < total:
            self.call.token.raise_if_cancelled()  # the unit is the yield point
            rows = range(start, min(start + self.call.unit_rows("gradient", most), total))
            x = make_inputs(rows).detach()
            result: GradientResult = run_unit(
                GradientUnit(
                    self.model,
                    net,
                    x,
                    for_rows(targets_of, rows),
                    self.relu_rule,
                    rules,
                )
            )
            self.call.count(forward=len(rows))
            for gradient_pass in result.passes:
                self.call.count(backward=len(gradient_pass.selected))
                consume(rows, x, gradient_pass.j, gradient_pass.selected, gradient_pass.gradient)
            start = rows.stop


def relu_rule_unsupported(name: str, model: Model) -> str | None:
    """Why a model cannot take per-call ReLU rules: TorchScript takes no hooks, and a network that runs no
    nn.ReLU module would get the plain gradient under a guided name (its activations are named)."""
    if not isinstance(model, TorchModel) or not model.supports_layer_hooks:
        return f"{name} needs an eager torch model (hooks on nn.ReLU modules); this one is TorchScript"
    if not any(site.guided for site in model.activations):
        kinds = activation_kinds(model.activations)
        runs = f"its activations are {', '.join(kinds)}" if kinds else "it runs no activation the server sees"
        return (
            f"{name} changes the backward of nn.ReLU modules only, and this model runs none ({runs}), "
            "so the map would be the plain gradient"
        )
    return None
