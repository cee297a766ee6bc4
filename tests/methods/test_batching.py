"""Memory-budgeted batching: what a row costs, how rows are split, and that a cancelled call stops
within one batch."""

from __future__ import annotations

import math

import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox.config import AttributionSettings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import Cancelled
from glassbox.core.images import InputSpec
from glassbox.core.model_config import ModelConfig, ModelFormat
from glassbox.methods.batching import (
    batch_ranges,
    evaluate_in_batches,
    gradient_bytes_per_row,
    inference_bytes_per_row,
    input_bytes,
    leaf_layers,
)
from glassbox.models.architectures import build_architecture
from glassbox.serving.execution import SCHEDULED


def shapes_model(*, scripted: bool = False) -> TorchModel:
    config = ModelConfig(
        format=ModelFormat.SAFETENSORS,
        weights="model.safetensors",
        labels=("circle", "square", "triangle", "cross", "star", "ring"),
        input=InputSpec(64, 64),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        architecture="glassbox.shapes_cnn",
    )
    torch.manual_seed(0)
    net = build_architecture("glassbox.shapes_cnn", 6).eval()
    if scripted:
        net = torch.jit.trace(net, torch.zeros(1, 3, 64, 64))
    return TorchModel("shapes", "1", config, "digest", net, torch.device("cpu"))


@pytest.fixture(scope="module")
def model() -> TorchModel:
    return shapes_model()


def test_leaf_layers_drop_containers(model: TorchModel) -> None:
    names = [info.name for info in leaf_layers(model.layers)]
    assert "features" not in names and "classifier" not in names
    assert names[:3] == ["features.0", "features.1", "features.2"]
    assert names[-1] == "classifier.2"


def test_row_costs_follow_the_layer_shapes(model: TorchModel) -> None:
    leaves = leaf_layers(model.layers)
    largest = max(4 * math.prod(info.output_shape) for info in leaves)
    total = sum(4 * math.prod(info.output_shape) for info in leaves)
    image = 3 * 64 * 64 * 4
    assert input_bytes(model) == image
    assert inference_bytes_per_row(model) == image + 3 * largest
    assert gradient_bytes_per_row(model) == 2 * (image + total)
    assert gradient_bytes_per_row(model) > inference_bytes_per_row(model)


def test_models_without_layer_shapes_get_a_conservative_multiple_of_the_input() -> None:
    scripted = shapes_model(scripted=True)
    assert scripted.layers == []
    assert inference_bytes_per_row(scripted) == 16 * input_bytes(scripted)
    assert gradient_bytes_per_row(scripted) == 128 * input_bytes(scripted)


def test_batch_ranges_cover_every_row_once() -> None:
    assert list(batch_ranges(10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(batch_ranges(3, 8)) == [(0, 3)]
    with pytest.raises(ValueError):
        list(batch_ranges(3, 0))


def test_the_memory_budget_sets_the_rows_per_batch(model: TorchModel) -> None:
    row = inference_bytes_per_row(model)
    call = CallContext(
        model, CancellationToken(), AttributionSettings(memory_budget_bytes=3 * row + 1), compute=SCHEDULED
    )
    assert call.rows_per_batch(row) == 3
    unbounded = CallContext(model, CancellationToken(), AttributionSettings(), compute=SCHEDULED)
    assert 1 <= unbounded.rows_per_batch(row) <= 64


def test_batched_evaluation_equals_one_pass_and_counts_every_row(model: TorchModel) -> None:
    inputs = torch.rand(10, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    call = CallContext(model, CancellationToken(), AttributionSettings(), compute=SCHEDULED)
    built: list[tuple[int, int]] = []

    def build(start: int, stop: int) -> torch.Tensor:
        built.append((start, stop))
        return inputs[start:stop]

    logits = evaluate_in_batches(call, build, 10, 4)
    assert built == [(0, 4), (4, 8), (8, 10)]
    assert call.counter.forward == 10
    torch.testing.assert_close(logits, model.logits(inputs), atol=1e-5, rtol=1e-5)


def test_a_cancelled_call_stops_within_one_batch(model: TorchModel) -> None:
    token = CancellationToken()
    call = CallContext(model, token, AttributionSettings(), compute=SCHEDULED)
    built: list[int] = []

    def build(start: int, stop: int) -> torch.Tensor:
        built.append(start)
        if len(built) == 2:
            token.cancel()  # the client goes away while the second batch is being prepared
        return torch.zeros(stop - start, 3, 64, 64)

    with pytest.raises(Cancelled):
        evaluate_in_batches(call, build, 100, 10)
    assert built == [0, 10]
    assert call.counter.forward == 10
