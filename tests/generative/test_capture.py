"""Layer capture on the shared demo model: hooks live only inside the `with` block, act only on the
thread that entered it, survive in-place ReLUs, and cut the forward pass short when no logits are needed."""

from __future__ import annotations

import threading

import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox.common.capture import LayerCapture
from glassbox.models.repository import ModelRepository
from support.generative_harness import IMAGES, MODEL, layer_output
from support.paths import MODELS

PIXELS = IMAGES.images[:2]


@pytest.fixture(scope="module")
def model() -> TorchModel:
    repository = ModelRepository(MODELS, device=torch.device("cpu"))
    repository.load_all()
    return repository.get(MODEL)


def hook_count(model: TorchModel) -> int:
    return sum(len(module._forward_hooks) for module in model.module.modules())


def test_hooks_are_removed_on_exit_and_on_error(model: TorchModel) -> None:
    before = hook_count(model)
    with LayerCapture(model, ["features.6", "features.10"], need_logits=False) as capture:
        assert hook_count(model) == before + 2
        capture.forward(PIXELS)
    assert hook_count(model) == before
    with pytest.raises(ValueError), LayerCapture(model, ["features.6"], need_logits=True):
        raise ValueError("the job failed")
    assert hook_count(model) == before
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        capture.forward(PIXELS)


def test_the_forward_pass_stops_after_the_last_layer_unless_logits_are_needed(model: TorchModel) -> None:
    with LayerCapture(model, ["features.10"], need_logits=False) as capture, torch.no_grad():
        truncated = capture.forward(PIXELS)
    with LayerCapture(model, ["features.10"], need_logits=True) as capture, torch.no_grad():
        full = capture.forward(PIXELS)
    assert truncated.logits is None
    torch.testing.assert_close(full.logits, model.logits(PIXELS))
    torch.testing.assert_close(truncated.layers["features.10"], full.layers["features.10"])


def test_a_batchnorm_output_before_an_inplace_relu_keeps_its_values_and_its_gradient(
    model: TorchModel,
) -> None:
    pixels = PIXELS.clone().requires_grad_(True)
    with LayerCapture(model, ["features.9", "features.10"], need_logits=False) as capture:
        activations = capture.forward(pixels)
        batchnorm, relu = activations.layers["features.9"], activations.layers["features.10"]
        assert float(batchnorm.detach().min()) < 0  # not overwritten by the in-place ReLU that follows
        torch.testing.assert_close(relu.detach(), batchnorm.detach().clamp_min(0))
        batchnorm.sum().backward()
    assert pixels.grad is not None and float(pixels.grad.abs().sum()) > 0


def test_another_threads_forward_pass_is_neither_captured_nor_cut_short(model: TorchModel) -> None:
    expected = model.logits(PIXELS)
    seen: list[torch.Tensor] = []
    with LayerCapture(model, ["features.6"], need_logits=False) as capture:
        other = threading.Thread(target=lambda: seen.append(model.logits(PIXELS)))
        other.start()
        other.join()
        with torch.no_grad():
            mine = capture.forward(PIXELS[:1])
    torch.testing.assert_close(seen[0], expected)
    assert mine.layers["features.6"].shape[0] == 1
    torch.testing.assert_close(mine.layers["features.6"], layer_output(model, "features.6", PIXELS[:1]))
