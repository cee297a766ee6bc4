"""Objectives: their values on the demo model equal the layer outputs and logits read independently,
they combine like numbers, and binding checks layers and indices naming the field."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from glassbox.backends.torch_backend import TorchModel
from glassbox.common.capture import Activations, LayerCapture
from glassbox.core.errors import InvalidArgument
from glassbox.generative import objectives as obj
from glassbox.models.repository import ModelRepository
from support.generative_harness import IMAGES, MODEL, layer_output
from support.paths import MODELS

PIXELS = IMAGES.images[:2]


@pytest.fixture(scope="module")
def model() -> TorchModel:
    repository = ModelRepository(MODELS, device=torch.device("cpu"))
    repository.load_all()
    return repository.get(MODEL)


def evaluate(model: TorchModel, objective: obj.Objective, pixels: torch.Tensor = PIXELS) -> torch.Tensor:
    objective = objective.bind(model, "objective")
    with (
        LayerCapture(model, objective.layers, need_logits=objective.needs_logits) as capture,
        torch.no_grad(),
    ):
        return objective(capture.forward(pixels))


def test_unit_objectives_read_the_layer_outputs_and_logits(model: TorchModel) -> None:
    features = layer_output(model, "features.10", PIXELS)
    logits = model.logits(PIXELS)
    torch.testing.assert_close(evaluate(model, obj.Neuron("features.10", 3)), features[:, 3, 8, 8])
    torch.testing.assert_close(
        evaluate(model, obj.Neuron("features.10", 3, y=2, x=13)), features[:, 3, 2, 13]
    )
    torch.testing.assert_close(evaluate(model, obj.Channel("features.10", 5)), features[:, 5].mean((1, 2)))
    torch.testing.assert_close(
        evaluate(model, obj.LayerActivation("features.10")), features.square().mean((1, 2, 3))
    )
    torch.testing.assert_close(evaluate(model, obj.Logit(4)), logits[:, 4])
    torch.testing.assert_close(evaluate(model, obj.Probability(4)), F.softmax(logits, 1)[:, 4])
    pooled = layer_output(model, "classifier.1", PIXELS)
    torch.testing.assert_close(evaluate(model, obj.Neuron("classifier.1", 9)), pooled[:, 9])


def test_objectives_add_and_scale_like_numbers(model: TorchModel) -> None:
    channel, neuron, logit = obj.Channel("features.6", 1), obj.Neuron("features.10", 2), obj.Logit(0)
    combined = channel + 2 * neuron - logit * 0.5
    assert isinstance(combined, obj.WeightedSum) and len(combined.terms) == 3
    assert combined.layers == {"features.6", "features.10"} and combined.needs_logits
    expected = evaluate(model, channel) + 2 * evaluate(model, neuron) - 0.5 * evaluate(model, logit)
    torch.testing.assert_close(evaluate(model, combined), expected)


def test_diversity_is_minus_one_for_identical_images_and_higher_for_different_ones(model: TorchModel) -> None:
    same = evaluate(model, obj.Diversity("features.6"), PIXELS[:1].expand(2, -1, -1, -1))
    torch.testing.assert_close(same, torch.full((2,), -1.0))
    different = evaluate(model, obj.Diversity("features.6"))
    assert bool((different > -1).all()) and bool((different <= 0).all())
    assert float(evaluate(model, obj.Diversity("features.6"), PIXELS[:1])[0]) == 0.0


def test_a_neuron_keeps_its_offset_from_the_centre_on_a_larger_grid() -> None:
    neuron = obj.Neuron("layer", 0, y=4, x=11, grid=(16, 16))
    grid = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32)
    value = neuron(Activations(layers={"layer": grid}, logits=None))
    assert float(value[0]) == float(grid[0, 0, 4 + 8, 11 + 8])


@pytest.mark.parametrize(
    ("objective", "field", "words"),
    [
        (obj.Channel("features.99", 0), "objective.layer", "no layer"),
        (obj.Channel("features.10", 64), "objective.channel", "0..63"),
        (obj.Neuron("features.10", 0, y=16), "objective.y", "0..15"),
        (obj.Neuron("features.10", 0, x=-1), "objective.x", "0..15"),
        (obj.Neuron("classifier.1", 0, y=0), "objective.y", "leave y and x unset"),
        (obj.Diversity("classifier.1"), "objective.layer", "[C, H, W]"),
        (obj.Logit(6), "objective", "0..5"),
        (obj.WeightedSum(()), "objective.terms", "at least one term"),
        (
            obj.Channel("features.10", 0) + obj.Neuron("features.10", 99),
            "objective.terms[1].objective.channel",
            "0..63",
        ),
    ],
)
def test_binding_refuses_what_the_model_does_not_have(
    model: TorchModel, objective: obj.Objective, field: str, words: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        objective.bind(model, "objective")
    assert caught.value.field == field
    assert words in caught.value.message


def test_classes_are_found_by_index_or_label(model: TorchModel) -> None:
    assert obj.class_index(model, label="star", field="target") == 4
    assert obj.class_index(model, index=2, field="target") == 2
    with pytest.raises(InvalidArgument, match="no class 'Star'") as caught:
        obj.class_index(model, label="Star", field="target.label")
    assert caught.value.field == "target.label"
