"""Top-activating examples on the demo model's validation set, through the real JobService: the
returned images are the set's strongest for the channel (by max or by mean, checked with the test's
own hook), their mean activation is above the set's 90th percentile, each patch is the receptive field
of the strongest position (derived here from the architecture's kernel sizes and strides), and each
patch gradient is the activation's true input gradient, which is zero outside the patch. Single units
and [C] layers work; bad specs are refused naming the field."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox_client import GlassboxClient
from glassbox_client._generated.glassbox.v1 import datasets_pb2
from glassbox_client._generated.glassbox.v1 import inspection_pb2 as ins
from PIL import Image
from support.inspection_harness import (
    MODEL,
    ONNX_MODEL,
    assert_refused,
    layer_output,
    named,
    run_job,
    submit_error,
    tensor_of,
)
from torch import nn

LAYER, CHANNEL, COUNT = "features.14", 16, 9
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def model(server) -> TorchModel:
    return server.server.context.repository.get(MODEL)


@pytest.fixture(scope="module")
def dataset(server):
    return server.server.context.repository.dataset(MODEL, "shapes-val", max_pixels=10**8)


@pytest.fixture(scope="module")
def channel_maps(model, dataset) -> torch.Tensor:
    return layer_output(model, LAYER, dataset.images)[:, CHANNEL]  # [240, 8, 8]


def top(server, **fields: object) -> ins.TopActivatingResult:
    values = {"model": MODEL, "seed": 1, "images": named(), "layer": LAYER, "channel": CHANNEL, **fields}
    spec = ins.TopActivatingSpec(**values)
    return run_job(server.channel, top_activating=spec).top_activating


def receptive_box(model: TorchModel, layer: str, y: int, x: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a position's receptive field, clipped to the image, from the
    kernel sizes, strides and paddings of the layers up to `layer` (a plain sequential stack)."""
    size, jump, start = 1, 1, 0.0
    for name, module in model.module.net.features.named_children():
        if isinstance(module, nn.Conv2d | nn.MaxPool2d):
            kernel, stride, padding = (
                (module.kernel_size[0], module.stride[0], module.padding[0])
                if isinstance(module, nn.Conv2d)
                else (module.kernel_size, module.stride, module.padding)
            )
            size += (kernel - 1) * jump
            start += ((kernel - 1) / 2 - padding) * jump
            jump *= stride
        if f"features.{name}" == layer:
            break
    height = model.config.input.height
    top, left = round(start + y * jump - (size - 1) / 2), round(start + x * jump - (size - 1) / 2)
    bottom, right = min(top + size, height), min(left + size, height)
    return max(top, 0), max(left, 0), bottom - max(top, 0), right - max(left, 0)


def unit_gradient(model: TorchModel, image: torch.Tensor, y: int, x: int) -> torch.Tensor:
    """d features.14[CHANNEL, y, x] / d image, by the test's own hook and autograd: [3, H, W]."""
    captured: list[torch.Tensor] = []
    handle = model.module.net.get_submodule(LAYER).register_forward_hook(
        lambda _m, _i, output: captured.append(output)
    )
    pixels = image[None].clone().requires_grad_(True)
    try:
        model.module(pixels)
    finally:
        handle.remove()
    (gradient,) = torch.autograd.grad(captured[0][0, CHANNEL, y, x], pixels)
    return gradient[0]


def test_the_strongest_images_of_a_channel_with_their_patches(server, model, dataset, channel_maps) -> None:
    result = top(server, count=COUNT)
    peaks = channel_maps.flatten(1).amax(1)
    expected = torch.sort(peaks, descending=True, stable=True).indices[:COUNT]
    assert [e.index for e in result.examples] == expected.tolist()
    assert [e.activation for e in result.examples] == pytest.approx(peaks[expected].tolist(), rel=1e-5)
    assert torch.allclose(tensor_of(result.activations), peaks, atol=1e-5)
    assert np.mean([e.activation for e in result.examples]) > np.percentile(peaks.numpy(), 90)
    assert (result.receptive_field_height, result.receptive_field_width) == (38, 38)

    for example in result.examples:
        position = int(channel_maps[example.index].flatten().argmax())
        assert (example.y, example.x) == divmod(position, 8)
        box = example.patch
        assert (box.top, box.left, box.height, box.width) == receptive_box(model, LAYER, example.y, example.x)
        assert example.label == int(dataset.labels[example.index])
        assert example.name == f"shapes-val[{example.index}]"
        assert Image.open(io.BytesIO(example.patch_png)).size == (box.width, box.height)
        assert Image.open(io.BytesIO(example.image_png)).size == (64, 64)
    summary = Image.open(io.BytesIO(result.summary_png))
    assert summary.size == (COUNT * 77 - 1, 2 * 77 - 1)  # 38-pixel slots magnified twice, 1-pixel gaps


def test_each_patch_gradient_is_the_activations_input_gradient(server, model, dataset) -> None:
    result = top(server, count=3)
    for example in result.examples:
        box = example.patch
        full = unit_gradient(model, dataset.images[example.index], example.y, example.x)
        patch = full[:, box.top : box.top + box.height, box.left : box.left + box.width]
        assert torch.allclose(tensor_of(example.patch_gradient), patch, atol=1e-6)
        assert patch.abs().sum() > 0
        outside = full.clone()
        outside[:, box.top : box.top + box.height, box.left : box.left + box.width] = 0
        assert outside.abs().max() == 0  # nothing outside the receptive field reaches the unit


def test_ranking_by_mean_activation_beats_the_90th_percentile(server, channel_maps) -> None:
    result = top(server, count=COUNT, ranking=ins.RANKING_MEAN)
    means = channel_maps.flatten(1).mean(1)
    expected = torch.sort(means, descending=True, stable=True).indices[:COUNT]
    assert [e.index for e in result.examples] == expected.tolist()
    top_mean = float(np.mean([e.activation for e in result.examples]))
    assert top_mean == pytest.approx(float(means[expected].mean()), rel=1e-5)
    assert top_mean > np.percentile(means.numpy(), 90)


def test_a_single_unit_and_a_vector_layer(server, model, dataset, channel_maps) -> None:
    unit = top(server, count=4, y=2, x=5)
    values = channel_maps[:, 2, 5]
    assert [e.index for e in unit.examples] == torch.sort(values, descending=True, stable=True).indices[
        :4
    ].tolist()
    assert {(e.y, e.x) for e in unit.examples} == {(2, 5)}
    box = unit.examples[0].patch
    assert (box.top, box.left, box.height, box.width) == receptive_box(model, LAYER, 2, 5)

    vector = top(server, layer="classifier.1", channel=3, count=2, images=named(limit=16))
    pooled = layer_output(model, "classifier.1", dataset.images[:16])[:, 3]
    assert [e.index for e in vector.examples] == torch.sort(pooled, descending=True).indices[:2].tolist()
    assert (vector.receptive_field_height, vector.receptive_field_width) == (64, 64)
    assert vector.examples[0].patch.height == 64 and vector.examples[0].patch.width == 64


def test_bad_specs_are_refused_naming_the_field(server) -> None:
    def refused(field: str, code: grpc.StatusCode = INVALID, **fields: object) -> None:
        values = {"model": MODEL, "images": named(limit=8), "layer": LAYER, "channel": CHANNEL, **fields}
        error = submit_error(server.channel, top_activating=ins.TopActivatingSpec(**values))
        assert_refused(error, code, f"top_activating.{field}")

    refused("channel", channel=128)
    refused("channel", channel=-1)
    refused("layer", layer="")
    refused("layer", layer="features.99")
    refused("y", y=3)
    refused("y", y=8, x=0)
    refused("x", y=0, x=8)
    refused("y", layer="classifier.1", y=0, x=0)
    refused("ranking", y=1, x=1, ranking=ins.RANKING_MEAN)
    refused("ranking", ranking=5)
    refused("count", count=0)
    refused("count", count=9)  # more than the 8 images
    refused("images.inline.images", images=datasets_pb2.ImageSet(inline=datasets_pb2.InlineImageSet()))
    refused("images.limit", images=named(limit=-1))
    refused("model", grpc.StatusCode.FAILED_PRECONDITION, model=ONNX_MODEL)
    assert len(top(server, count=1, images=named(limit=2)).examples) == 1


def test_the_typed_client_runs_the_job(server) -> None:
    with GlassboxClient(server.address) as glassbox:
        job = glassbox.jobs.run(
            "top_activating",
            model=MODEL,
            images={"named": "shapes-val", "limit": 16},
            layer=LAYER,
            channel=CHANNEL,
            count=2,
            timeout=60,
        )
    assert job.result is not None
    assert job.result.arrays["activations"].shape == (16,)
    assert job.result.values["receptive_field_height"] == 38
