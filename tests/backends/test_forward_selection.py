"""The no-grad forward engine chosen at load: the fastest one whose logits equal eager torch's."""

from __future__ import annotations

import pytest
import torch
from glassbox.backends.forward_selection import TOLERANCE, TunedTorchModel, select_forward
from glassbox.core.images import InputSpec
from glassbox.models.architectures import build_architecture
from glassbox.models.config import ModelConfig, ModelFormat
from torch import nn

CONFIG = ModelConfig(
    format=ModelFormat.SAFETENSORS,
    weights="model.safetensors",
    labels=("circle", "square", "triangle", "cross", "star", "ring"),
    input=InputSpec(64, 64),
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    architecture="glassbox.shapes_cnn",
)


@pytest.fixture(scope="module")
def model() -> TunedTorchModel:
    torch.manual_seed(0)
    return TunedTorchModel(
        "shapes", "1", CONFIG, "digest", build_architecture("glassbox.shapes_cnn", 6), torch.device("cpu")
    )


def test_every_candidate_is_timed_and_the_fastest_agreeing_one_is_kept(model: TunedTorchModel) -> None:
    selection = model.forward_selection
    timings = {t.engine: t for t in selection.timings}
    assert set(timings) == {"torch", "torch-channels_last", "onnxruntime"}
    assert all(t.seconds_per_image > 0 for t in timings.values())
    agreeing = [t for t in timings.values() if t.max_abs_difference <= TOLERANCE * 10]
    assert selection.engine == min(agreeing, key=lambda t: t.seconds_per_image).engine


def test_logits_equal_eager_torch_whatever_the_engine(model: TunedTorchModel) -> None:
    pixels = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        eager = model.differentiable()(pixels)
    logits = model.logits(pixels)
    assert logits.shape == (5, 6) and logits.device.type == "cpu" and not logits.requires_grad
    assert float((logits - eager).abs().max()) <= TOLERANCE * max(1.0, float(eager.abs().max()))


class BatchMeanScaled(nn.Module):
    """Scales by a Python float computed from the batch: tracing freezes it, so an ONNX export is wrong on
    any other batch and must be refused by the equality check."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3))) * float(x.mean())


def test_an_engine_whose_logits_differ_is_never_chosen() -> None:
    selection = select_forward(BatchMeanScaled().eval(), CONFIG, torch.device("cpu"))
    timings = {t.engine: t for t in selection.timings}
    assert timings["onnxruntime"].max_abs_difference > TOLERANCE
    assert selection.engine != "onnxruntime"


def test_a_vision_transformer_exports_and_agrees(capfd: pytest.CaptureFixture[str]) -> None:
    """nn.MultiheadAttention's fused inference path has no ONNX export; the selection traces around it."""
    torch.manual_seed(0)
    vit = TunedTorchModel(
        "vit", "1", CONFIG, "digest", build_architecture("glassbox.tiny_vit", 6), torch.device("cpu")
    )
    timings = {t.engine: t for t in vit.forward_selection.timings}
    assert "onnxruntime" in timings and timings["onnxruntime"].max_abs_difference <= TOLERANCE * 10
    assert "Torch IR graph" not in capfd.readouterr().err
    assert torch.backends.mha.get_fastpath_enabled()
