"""The no-grad forward engine chosen at load: among the engines whose logits equal eager torch's, the
preferred one unless another is over 20% faster (so a near tie ends the same way on every start); a
configured engine; the engine of the methods that amplify logit differences; none in exact mode."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from glassbox.backends.forward_selection import (
    AMPLIFIED_TOLERANCE,
    MARGIN,
    TOLERANCE,
    EngineTiming,
    TunedTorchModel,
    preferred_engine,
    select_forward,
)
from glassbox.core.images import InputSpec
from glassbox.core.model_config import ExplainMode, ModelConfig, ModelFormat
from glassbox.models.architectures import build_architecture
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


def test_every_candidate_is_timed_and_the_preferred_agreeing_one_is_kept(model: TunedTorchModel) -> None:
    selection = model.forward_selection
    timings = {t.engine: t for t in selection.timings}
    assert set(timings) == {"torch", "torch-channels_last", "onnxruntime"}
    assert all(t.seconds_per_image > 0 for t in timings.values())
    agreeing = [t for t in timings.values() if t.max_abs_difference <= TOLERANCE * 10]
    assert selection.engine == preferred_engine(agreeing)
    assert model.forward_engine == selection.engine
    fastest = min(t.seconds_per_image for t in agreeing)
    assert timings[selection.engine].seconds_per_image <= fastest * (1 + MARGIN) ** 2


def timing(engine: str, milliseconds: float) -> EngineTiming:
    return EngineTiming(engine, milliseconds / 1e3, 0.0)


def test_a_near_tie_goes_to_the_preferred_engine_whichever_measured_faster() -> None:
    """resnet34 on two cores measured 98 against 105 ms per image: either order must give one engine."""
    for torch_ms, onnx_ms in [(98, 105), (105, 98), (100, 100)]:
        assert preferred_engine([timing("onnxruntime", onnx_ms), timing("torch", torch_ms)]) == "torch"
    assert preferred_engine([timing("torch", 105), timing("onnxruntime", 60)]) == "onnxruntime"
    three = [timing("torch", 100), timing("torch-channels_last", 80), timing("onnxruntime", 75)]
    assert preferred_engine(three) == "torch-channels_last"


@pytest.mark.parametrize("engine", ["torch", "torch-channels_last", "onnxruntime"])
def test_a_configured_engine_serves_without_a_choice(engine: str) -> None:
    torch.manual_seed(0)
    config = replace(CONFIG, forward_engine=engine)
    tuned = TunedTorchModel(
        "shapes", "1", config, "digest", build_architecture("glassbox.shapes_cnn", 6), torch.device("cpu")
    )
    assert tuned.forward_engine == engine
    assert {t.engine for t in tuned.forward_selection.timings} == {"torch", engine}


def test_a_configured_engine_that_disagrees_fails_the_load() -> None:
    with pytest.raises(ValueError, match="onnxruntime"):
        select_forward(
            BatchMeanScaled().eval(), replace(CONFIG, forward_engine="onnxruntime"), torch.device("cpu")
        )


def test_amplifying_methods_get_an_engine_that_agrees_to_their_tolerance(model: TunedTorchModel) -> None:
    """Score-CAM's engine: the chosen one where it agrees with eager torch 10× tighter than the general
    acceptance, else eager torch; checked on the selection's own probe batch."""
    probe = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        eager = model.differentiable()(probe)
    scale = max(1.0, float(eager.abs().max()))
    selection = model.forward_selection
    differences = {t.engine: t.max_abs_difference for t in selection.timings}
    agrees = differences[selection.engine] <= AMPLIFIED_TOLERANCE * scale
    assert selection.amplifying_engine == (selection.engine if agrees else "torch")
    assert float((model.amplifying_logits(probe) - eager).abs().max()) <= AMPLIFIED_TOLERANCE * scale


def test_exact_mode_times_nothing_and_runs_the_network_as_built() -> None:
    torch.manual_seed(0)
    net = build_architecture("glassbox.shapes_cnn", 6)
    exact = TunedTorchModel(
        "shapes", "1", replace(CONFIG, mode=ExplainMode.EXACT), "d", net, torch.device("cpu")
    )
    assert exact.forward_engine == "torch" and exact.forward_selection.timings == ()
    assert exact.input_gradient_network() is exact.differentiable()
    assert all(p.is_contiguous() for p in exact.differentiable().parameters())


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
