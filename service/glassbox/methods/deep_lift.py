"""DeepLift with the rescale rule (Shrikumar, Greenside & Kundaje 2017, "Learning Important Features
Through Propagating Activation Differences"), as Captum's `DeepLift`.

The attribution of a pixel is (x − x₀) times its multiplier: the gradient of the target's pre-softmax
score where every nonlinearity's derivative is replaced by Δf/Δx between the input and the baseline
(common/rescale.py). The input and its baseline run in one forward as a pair of rows; every target of
a row is one more backward of that forward. The attributions of a target add up to
score(x) − score(x₀) (summation-to-delta), up to the plain-derivative fallback where |Δx| < 1e-10.

Unlike Captum's module hooks, the rule reaches functional and reused ReLUs (densenet121's final
`F.relu`, the ReLU module every torchvision BasicBlock calls twice: Captum raises on it) and in-place
ReLUs; it refuses, naming the layer, the operations it is not defined for.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from glassbox.backends.base import Model
from glassbox.backends.torch_backend import TorchModel
from glassbox.common.rescale import unsupported_layer_reason
from glassbox.methods.base import ImageInput, MapResult, MethodOutput
from glassbox.methods.baselines import Baseline, BaselineChoice
from glassbox.methods.gradients import GradientMethod, TargetsOf, for_rows, graph_rows_per_batch
from glassbox.methods.targets import TargetSelector
from glassbox.serving.execution import run_unit
from glassbox.serving.units import GradientResult, RescaleGradientUnit

ConsumeDifference = Callable[[range, torch.Tensor, torch.Tensor, int, list[int], torch.Tensor], None]
"""(chunk rows, chunk inputs, chunk baselines, target pass j, rows with a j-th target, their multipliers)."""


@dataclass(frozen=True)
class DeepLiftParams:
    baseline: Baseline = Baseline.BLACK
    baseline_image: ImageInput | None = None
    blur_sigma: float = 5.0
    seed: int = 0


class RescaleMethod(GradientMethod):
    """Base of the methods that back-propagate DeepLift multipliers between inputs and baselines."""

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        reason = super().unsupported_reason(model)
        if reason is not None:
            return reason
        if not isinstance(model, TorchModel) or isinstance(model.module.net, torch.jit.ScriptModule):
            return f"{cls.name} needs an eager torch model (it follows the forward's operations)"
        return unsupported_layer_reason(cls.name, model.input_gradient_network())

    @abstractmethod
    def baselines_of(self, inputs: torch.Tensor) -> torch.Tensor:
        """Baselines [n · rows_per_input, 3, H, W] for input rows [n, 3, H, W] (row i · rows_per_input + k
        is the k-th baseline of input i)."""

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        """With one baseline per input the targets come from the logits of the paired forward itself (no
        extra pass, even for top-k); with several, from one plain forward of the inputs."""
        x = pixels.to(self.model.device, torch.float32)
        if self.rows_per_input > 1:
            logits = self.call.forward(x)
            targets = selector.resolve(logits)
            attributions = self.attribute_rows(x, targets)
            return MethodOutput(logits, targets, [[MapResult(m.cpu()) for m in row] for row in attributions])
        logits_out: list[torch.Tensor] = []
        targets_out: list[tuple[int, ...]] = []

        def targets_of(logits: torch.Tensor, rows: range) -> list[tuple[int, ...]]:
            chosen = selector.resolve_rows(logits, rows)
            logits_out.append(logits.cpu())
            targets_out.extend(chosen)
            return chosen

        rows = self.attribute_inputs(x, targets_of)
        maps = [[MapResult(m.cpu()) for m in row] for row in rows]
        return MethodOutput(torch.cat(logits_out), targets_out, maps)

    def attribute_rows(self, inputs: torch.Tensor, targets: list[tuple[int, ...]]) -> list[torch.Tensor]:
        per = self.rows_per_input
        rows = self.attribute_inputs(inputs, lambda _logits, rows: [targets[r // per] for r in rows])
        return [torch.stack(row) for row in rows]

    def attribute_inputs(self, inputs: torch.Tensor, targets_of: TargetsOf) -> list[list[torch.Tensor]]:
        """Per input row, per target: the mean over its baselines of (x − x₀) · multipliers. Network row
        r pairs input r // rows_per_input with baseline r; `targets_of` chooses each network row's targets."""
        per = self.rows_per_input
        baselines = self.baselines_of(inputs)
        sums: list[dict[int, torch.Tensor]] = [{} for _ in range(inputs.shape[0])]

        def consume(
            rows: range, x: torch.Tensor, b: torch.Tensor, j: int, selected: list[int], grad: torch.Tensor
        ) -> None:
            values = (x - b) * grad
            for r in selected:
                row = sums[(rows.start + r) // per]
                row[j] = row[j] + values[r] if j in row else values[r].clone()

        self.rescale_chunks(
            inputs.shape[0] * per,
            lambda rows: inputs[torch.arange(rows.start, rows.stop, device=inputs.device) // per],
            lambda rows: baselines[rows.start : rows.stop],
            targets_of,
            consume,
        )
        return [[row[j] / per for j in sorted(row)] for row in sums]

    def rescale_chunks(
        self,
        total: int,
        make_inputs: Callable[[range], torch.Tensor],
        make_baselines: Callable[[range], torch.Tensor],
        targets_of: TargetsOf,
        consume: ConsumeDifference,
    ) -> None:
        """`total` (input, baseline) rows in memory-budgeted chunks, each a `RescaleGradientUnit`."""
        net = self.model.input_gradient_network()
        most = graph_rows_per_batch(self.call, self.model, rows_per_item=2)
        start = 0
        while start < total:
            self.call.token.raise_if_cancelled()  # the unit is the yield point
            rows = range(start, min(start + self.call.unit_rows("gradient", most), total))
            x, b = make_inputs(rows).detach(), make_baselines(rows).detach()
            result: GradientResult = run_unit(
                RescaleGradientUnit(self.model, net, x, b, for_rows(targets_of, rows), self.name)
            )
            self.call.count(forward=2 * len(rows))
            for gradient_pass in result.passes:
                self.call.count(backward=len(gradient_pass.selected))
                consume(rows, x, b, gradient_pass.j, gradient_pass.selected, gradient_pass.gradient)
            start = rows.stop


class DeepLift(RescaleMethod):
    """(x − x₀) · the rescale-rule multipliers of the target's score."""

    name = "deep_lift"
    smoothable = True
    Params = DeepLiftParams

    def validate(self) -> None:
        p = self.params
        self.baseline = BaselineChoice(self, p.baseline, p.baseline_image, p.blur_sigma, p.seed)

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return 0, 2 * images * targets

    def baselines_of(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.baseline.of(inputs)
