"""Style transfer jobs (Gatys et al. 2016) on the demo model: the style loss, recomputed here from the
result with Gram matrices of the test's own, falls at least tenfold while the content stays closer to the
content image than the style image itself is."""

from __future__ import annotations

import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from support.generative_harness import IMAGES, MODEL, image_proto, layer_output, run_job, tensor_of

CONTENT_LAYER = "features.10"
STYLE_LAYERS = ("features.2", "features.6", "features.10")


@pytest.fixture(scope="module")
def model(server) -> TorchModel:
    return server.server.context.repository.get(MODEL)


def style_loss(model: TorchModel, image: torch.Tensor, style: torch.Tensor) -> float:
    total = 0.0
    for layer in STYLE_LAYERS:
        grams = []
        for pixels in (image, style):
            features = layer_output(model, layer, pixels[None]).flatten(2)[0]
            grams.append(features @ features.T / features.numel())
        total += float((grams[0] - grams[1]).square().sum() / grams[1].square().sum())
    return total


def content_loss(model: TorchModel, image: torch.Tensor, content: torch.Tensor) -> float:
    """‖φ(image) − φ(content)‖² / ‖φ(content)‖² at the content layer."""
    features, target = (layer_output(model, CONTENT_LAYER, x[None]) for x in (image, content))
    return float((features - target).square().sum() / target.square().sum())


def test_the_style_loss_falls_at_least_tenfold(server, model: TorchModel) -> None:
    content, style = IMAGES.images[2], IMAGES.images[3]
    spec = gen.StyleTransferSpec(
        model=MODEL,
        seed=0,
        content_image=image_proto(content),
        style_image=image_proto(style),
        content_layer=CONTENT_LAYER,
        style_layers=STYLE_LAYERS,
        steps=64,
    )
    job = run_job(server.channel, style_transfer=spec).job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    assert job.progress.step == job.progress.total == 64
    result = job.style_transfer

    stylised = tensor_of(result.image.pixels)
    before, after = style_loss(model, content, style), style_loss(model, stylised, style)
    assert before == pytest.approx(result.initial_style_loss, rel=1e-3)
    assert after == pytest.approx(result.final_style_loss, rel=1e-3)
    assert after <= before / 10
    assert result.initial_content_loss == pytest.approx(0.0, abs=1e-6)
    assert result.final_content_loss == pytest.approx(content_loss(model, stylised, content), rel=1e-3)
    # the style weight (100) dominates, so the content drifts, but the result stays nearer the content
    # image than handing back the style image would
    assert result.final_content_loss < content_loss(model, style, content)
