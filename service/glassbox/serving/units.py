"""Units: the bounded pieces of model work that the compute scheduler runs, and how compatible units of
different calls merge into one batch (Triton's dynamic batcher, for explanation work).

A call is cut into units by the code that computes it: every forward batch of a perturbation method
(`ForwardUnit`), every forward-with-graph + backward chunk of an input-gradient method (`GradientUnit`).
Units of different calls merge when their `batch_key`s are equal: the same model version (and, for
gradients, the same network and ReLU rule). Rows of a batch are independent in eval mode, so a merged
unit gives every member the rows it would have got alone, up to float rounding of the larger batch.

Code that is not a unit (a CAM's hooked forward, a job's optimisation step) runs in the call's own
greenlet on the compute thread, between two yield points; it is a unit too, only not a mergeable one.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from glassbox.backends.base import Model
from glassbox.common.hooks import CallHooks, CallRules, OutputRecorder, ReluRule, ReluRules, RuleSwitch
from glassbox.common.rescale import RescaleRules

DEFAULT_MAX_ROWS = {"cpu": 16, "cuda": 64}
"""Most rows of a merged batch when model.toml says nothing: a CPU gains little beyond 16 rows of a
convolutional network (its caches set the best batch), a GPU keeps gaining up to a few dozen."""
DEFAULT_MAX_QUEUE_DELAY_MS = {"cpu": 1.0, "cuda": 2.0}
"""How long a unit may wait for other calls' units to join when model.toml says nothing."""


def batching_limits(model: Model) -> tuple[int, float]:
    """(max_rows, max_queue_delay_seconds) of the model's dynamic batcher: model.toml, else the device's."""
    device = model.device.type if model.device.type in DEFAULT_MAX_ROWS else "cpu"
    config = model.config.batching
    rows = config.max_rows if config.max_rows is not None else DEFAULT_MAX_ROWS[device]
    delay = (
        config.max_queue_delay_ms
        if config.max_queue_delay_ms is not None
        else DEFAULT_MAX_QUEUE_DELAY_MS[device]
    )
    return rows, delay / 1000.0


class Unit(ABC):
    """One bounded piece of model work of one call."""

    kind: ClassVar[str]
    model: Model

    @property
    @abstractmethod
    def rows(self) -> int:
        """Network rows the unit evaluates (its size in a merged batch)."""

    @property
    def weight(self) -> int:
        """Rows × passes: what the unit's measured time is divided by to learn the per-row cost."""
        return self.rows

    def batch_key(self) -> Hashable | None:
        """Units with equal keys can run as one batch; None: this unit always runs alone."""
        return None

    @abstractmethod
    def execute(self) -> Any:
        """Run the unit alone and return its result."""

    @classmethod
    def execute_merged(cls, units: list[Unit]) -> list[Any]:
        """Run units with equal batch keys as one batch; one result (or exception instance) per unit."""
        return [_attempt(unit.execute) for unit in units]


def _attempt(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except Exception as exc:  # handed to the member's own call, raised there
        return exc


@dataclass(eq=False)
class ForwardUnit(Unit):
    """Logits [n, classes] (CPU, no gradients) of pixels [n, 3, H, W]: Predict, perturbation batches.
    `amplifying`: for a method whose maps amplify logit differences (`Model.amplifying_logits`)."""

    kind: ClassVar[str] = "forward"
    model: Model
    pixels: torch.Tensor
    amplifying: bool = False

    @property
    def rows(self) -> int:
        return int(self.pixels.shape[0])

    def batch_key(self) -> Hashable:
        return ("forward", id(self.model), self.amplifying, tuple(self.pixels.shape[1:]))

    def execute(self) -> torch.Tensor:
        return self._logits(self.pixels)

    def _logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.amplifying_logits(pixels) if self.amplifying else self.model.logits(pixels)

    @classmethod
    def execute_merged(cls, units: list[Unit]) -> list[Any]:
        members = [unit for unit in units if isinstance(unit, ForwardUnit)]
        if len(members) == 1:
            return [_attempt(members[0].execute)]
        try:
            logits = members[0]._logits(torch.cat([unit.pixels for unit in members]))
        except Exception as exc:
            return [exc] * len(members)
        return list(logits.split([unit.rows for unit in members]))


@dataclass(eq=False)
class LayerOutputUnit(Unit):
    """Logits [n, classes] (CPU, no gradients) and `layer`'s output [n, ...] of pixels [n, 3, H, W] in one
    pass (`Model.logits_and_layer`): the passes of the gradient-free CAMs, mergeable across calls that
    read the same layer."""

    kind: ClassVar[str] = "forward"
    model: Model
    pixels: torch.Tensor
    layer: str

    @property
    def rows(self) -> int:
        return int(self.pixels.shape[0])

    def batch_key(self) -> Hashable:
        return ("layer_output", id(self.model), self.layer, tuple(self.pixels.shape[1:]))

    def execute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.logits_and_layer(self.pixels, self.layer)

    @classmethod
    def execute_merged(cls, units: list[Unit]) -> list[Any]:
        members = [unit for unit in units if isinstance(unit, LayerOutputUnit)]
        if len(members) == 1:
            return [_attempt(members[0].execute)]
        first = members[0]
        try:
            logits, values = first.model.logits_and_layer(
                torch.cat([unit.pixels for unit in members]), first.layer
            )
        except Exception as exc:
            return [exc] * len(members)
        sizes = [unit.rows for unit in members]
        return list(zip(logits.split(sizes), values.split(sizes), strict=True))


@dataclass(eq=False)
class LayerReplacementUnit(Unit):
    """Logits [n, classes] (CPU, no gradients) of `network` with `layer`'s output replaced by
    `replacement` [n, ...]: Ablation-CAM's ablated passes.

    `inputs` is [n, 3, H, W], or one image [1, 3, H, W] when every row is the same image: then the layers
    before `layer` run once and the rows part at the replaced output (what follows must broadcast a
    one-row tensor against n rows, as residual additions do; the caller checks the result). Its own
    kind: a pass from a late layer onwards costs a fraction of a forward, and mixed into the forward
    fit it would make every forward look cheap and the ablated passes look like whole forwards."""

    kind: ClassVar[str] = "layer_replacement"
    model: Model
    network: torch.nn.Module
    layer: torch.nn.Module
    inputs: torch.Tensor
    replacement: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.replacement.shape[0])

    def execute(self) -> torch.Tensor:
        with CallHooks() as hooks, torch.no_grad():
            hooks.forward_hook(self.layer, lambda *_: self.replacement)
            return self.network(self.inputs).float().cpu()


@dataclass
class GradientPass:
    """One backward pass of a gradient unit: the rows that have a `j`-th target and the input gradient."""

    j: int
    selected: list[int]
    gradient: torch.Tensor  # [n, 3, H, W]: zero in rows not selected


class GraphUnit(Unit):
    """A forward with graph over `inputs`, then one backward per target pass (the two kinds below): its
    size is its rows, its weight rows × the passes it ran, and alone it is a batch of one."""

    inputs: torch.Tensor
    passes_run: int

    @property
    def rows(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def weight(self) -> int:
        return self.rows * max(1, self.passes_run)

    def execute(self) -> Any:
        result = type(self).execute_merged([self])[0]
        if isinstance(result, Exception):
            raise result
        return result


@dataclass
class GradientResult:
    logits: torch.Tensor  # [n, classes], detached
    targets: list[tuple[int, ...]]
    passes: list[GradientPass] = field(default_factory=list)


@dataclass(eq=False)
class GradientUnit(GraphUnit):
    """One forward with graph of `inputs` through `network`, then one backward per target pass with one-hot
    output gradients picking each row's j-th target (methods/gradients.py explains the scheme).

    `targets_of(logits)` chooses each row's targets from the rows' own logits (top-k needs them)."""

    kind: ClassVar[str] = "gradient"
    model: Model
    network: torch.nn.Module
    inputs: torch.Tensor
    targets_of: Callable[[torch.Tensor], list[tuple[int, ...]]]
    relu_rule: ReluRule | None = None
    rules: CallRules | None = None  # a method's backward rules (LRP), attached for the unit's forward
    passes_run: int = 0

    def batch_key(self) -> Hashable:
        return (
            "gradient",
            id(self.model),
            id(self.network),
            self.relu_rule,
            self.rules,
            tuple(self.inputs.shape[1:]),
        )

    @classmethod
    def execute_merged(cls, units: list[Unit]) -> list[Any]:
        members = [unit for unit in units if isinstance(unit, GradientUnit)]
        first = members[0]
        sizes = [unit.rows for unit in members]
        with CallHooks() as hooks:
            if first.relu_rule is not None:
                ReluRules(hooks, first.network, RuleSwitch(first.relu_rule))
            if first.rules is not None:
                first.rules.install(hooks, first.network)
            x = torch.cat([unit.inputs for unit in members]).detach().requires_grad_(True)
            try:
                with torch.enable_grad():
                    logits = first.network(x)
            except Exception as exc:
                return [exc] * len(members)
            parts = logits.detach().split(sizes)
            results, targets = _resolve_targets(
                members, parts, lambda i, chosen: GradientResult(parts[i], chosen)
            )
            passes = _backward_passes(logits, x, targets, sizes, results, GradientResult)
        for unit in members:
            unit.passes_run = passes
        return results


@dataclass(eq=False)
class RescaleGradientUnit(GraphUnit):
    """DeepLift's passes (common/rescale.py): one forward with graph of the paired batch [inputs;
    baselines] under the rescale rule, then one backward per target pass from the inputs' logits to the
    inputs. Merged units stack all members' inputs, then all their baselines, which keeps every pair
    n rows apart. The result's logits and gradients are the inputs' rows."""

    kind: ClassVar[str] = "gradient"
    model: Model
    network: torch.nn.Module
    inputs: torch.Tensor
    baselines: torch.Tensor
    targets_of: Callable[[torch.Tensor], list[tuple[int, ...]]]
    method: str = "deep_lift"
    passes_run: int = 0

    @property
    def weight(self) -> int:
        return 2 * self.rows * max(1, self.passes_run)

    def batch_key(self) -> Hashable:
        return ("rescale", id(self.model), id(self.network), tuple(self.inputs.shape[1:]))

    @classmethod
    def execute_merged(cls, units: list[Unit]) -> list[Any]:
        members = [unit for unit in units if isinstance(unit, RescaleGradientUnit)]
        first = members[0]
        sizes = [unit.rows for unit in members]
        rows = sum(sizes)
        paired = torch.cat([unit.inputs for unit in members] + [unit.baselines for unit in members])
        x = paired.detach().requires_grad_(True)
        with CallHooks() as hooks:
            rules = RescaleRules(hooks, first.network, first.method)
            try:
                with torch.enable_grad(), rules:
                    logits = first.network(x)[:rows]
            except Exception as exc:
                return [exc] * len(members)
        parts = logits.detach().split(sizes)
        results, targets = _resolve_targets(
            members, parts, lambda i, chosen: GradientResult(parts[i], chosen)
        )
        passes = _backward_passes(logits, x, targets, sizes, results, GradientResult)
        for unit in members:
            unit.passes_run = passes
        return results


@dataclass
class LayerGradientResult:
    logits: torch.Tensor  # [n, classes], detached
    targets: list[tuple[int, ...]]
    activation: torch.Tensor  # the layer's output for these rows, detached
    passes: list[GradientPass] = field(default_factory=list)  # gradients at the layer's output


@dataclass(eq=False)
class LayerGradientUnit(GraphUnit):
    """One forward with graph of `inputs` through `network` recording `layer`'s output, then one backward
    per target pass to that output: the passes of Grad-CAM and Grad-CAM++ (the CAM is made from them by
    the call itself), mergeable across calls on the same layer."""

    kind: ClassVar[str] = "gradient"
    model: Model
    network: torch.nn.Module
    layer: torch.nn.Module
    inputs: torch.Tensor
    targets_of: Callable[[torch.Tensor], list[tuple[int, ...]]]
    passes_run: int = 0

    def batch_key(self) -> Hashable:
        return (
            "layer_gradient",
            id(self.model),
            id(self.network),
            id(self.layer),
            tuple(self.inputs.shape[1:]),
        )

    @classmethod
    def execute_merged(cls, units: list[Unit]) -> list[Any]:
        members = [unit for unit in units if isinstance(unit, LayerGradientUnit)]
        first = members[0]
        sizes = [unit.rows for unit in members]
        with CallHooks() as hooks:
            capture = OutputRecorder(hooks, first.layer)
            x = torch.cat([unit.inputs for unit in members]).detach().requires_grad_(True)
            try:
                with torch.enable_grad():
                    logits = first.network(x)
                activation = capture.last()
            except Exception as exc:
                return [exc] * len(members)
        parts, layer_parts = logits.detach().split(sizes), activation.detach().split(sizes)
        results, targets = _resolve_targets(
            members, parts, lambda i, chosen: LayerGradientResult(parts[i], chosen, layer_parts[i])
        )
        passes = _backward_passes(logits, activation, targets, sizes, results, LayerGradientResult)
        for unit in members:
            unit.passes_run = passes
        return results


@dataclass
class LayerReplacementResult:
    logits: torch.Tensor  # [n, classes], detached
    targets: list[tuple[int, ...]]
    passes: list[GradientPass] = field(default_factory=list)  # gradients at the replaced layer output


@dataclass(eq=False)
class LayerReplacementGradientUnit(GraphUnit):
    """One forward with graph of `inputs` through `network` with `layer`'s output replaced by
    `replacement` (rows of the layer's output shape), then one backward per target pass to the
    replacement: the path points of layer integrated gradients, mergeable across calls on the same layer."""

    kind: ClassVar[str] = "gradient"
    model: Model
    network: torch.nn.Module
    layer: torch.nn.Module
    inputs: torch.Tensor
    replacement: torch.Tensor
    targets_of: Callable[[torch.Tensor], list[tuple[int, ...]]]
    passes_run: int = 0

    def batch_key(self) -> Hashable:
        return (
            "layer_replacement",
            id(self.model),
            id(self.network),
            id(self.layer),
            tuple(self.inputs.shape[1:]),
            tuple(self.replacement.shape[1:]),
        )

    @classmethod
    def execute_merged(cls, units: list[Unit]) -> list[Any]:
        members = [unit for unit in units if isinstance(unit, LayerReplacementGradientUnit)]
        first = members[0]
        sizes = [unit.rows for unit in members]
        value = torch.cat([unit.replacement for unit in members]).detach().requires_grad_(True)
        with CallHooks() as hooks:
            # a copy, so that an in-place operation after the layer cannot touch the differentiated tensor
            hooks.forward_hook(first.layer, lambda _module, _inputs, _output: value.clone())
            try:
                with torch.enable_grad():
                    logits = first.network(torch.cat([unit.inputs for unit in members]).detach())
            except Exception as exc:
                return [exc] * len(members)
        parts = logits.detach().split(sizes)
        results, targets = _resolve_targets(
            members, parts, lambda i, chosen: LayerReplacementResult(parts[i], chosen)
        )
        passes = _backward_passes(logits, value, targets, sizes, results, LayerReplacementResult)
        for unit in members:
            unit.passes_run = passes
        return results


def _resolve_targets(
    members: list[Any], parts: tuple[torch.Tensor, ...], build: Callable[[int, list[tuple[int, ...]]], Any]
) -> tuple[list[Any], list[tuple[int, ...]]]:
    """Each member's targets from its rows' logits, and its result (`build(i, targets)`); a member whose
    targets cannot be chosen gets the exception as its result and no targets in the merged passes."""
    results: list[Any] = []
    targets: list[tuple[int, ...]] = []
    for unit, part in zip(members, parts, strict=True):
        chosen = _attempt(functools.partial(unit.targets_of, part))
        if isinstance(chosen, Exception):
            results.append(chosen)
            targets.extend([()] * unit.rows)
        else:
            results.append(build(len(results), chosen))
            targets.extend(chosen)
    return results, targets


def target_passes(
    logits: torch.Tensor, targets: list[tuple[int, ...]]
) -> Iterator[tuple[int, list[int], torch.Tensor]]:
    """For j = 0..k-1: (j, rows that have a j-th target, one-hot output gradient selecting them)."""
    passes = max((len(t) for t in targets), default=0)
    for j in range(passes):
        rows = [r for r, t in enumerate(targets) if len(t) > j]
        one_hot = torch.zeros_like(logits)
        one_hot[rows, [targets[r][j] for r in rows]] = 1.0
        yield j, rows, one_hot


def _backward_passes(
    logits: torch.Tensor,
    x: torch.Tensor,
    targets: list[tuple[int, ...]],
    sizes: list[int],
    results: list[Any],
    result_type: type[GradientResult | LayerGradientResult | LayerReplacementResult] = GradientResult,
) -> int:
    """Run the target passes over the merged batch (gradients with respect to `x`, the input or a layer's
    output) and hand each member its rows of each gradient."""
    last = max((len(t) for t in targets), default=0) - 1
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    for j, rows, one_hot in target_passes(logits, targets):
        (grad,) = torch.autograd.grad(logits, x, grad_outputs=one_hot, retain_graph=j < last)
        for result, offset, size in zip(results, offsets, sizes, strict=True):
            if isinstance(result, result_type):
                selected = [r - offset for r in rows if offset <= r < offset + size]
                if selected:
                    result.passes.append(GradientPass(j, selected, grad[offset : offset + size]))
    return last + 1
