"""ModelService over real gRPC: listing, describing, predicting, health, reflection and bad input."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from glassbox.demo.shapes import CLASSES, generate
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc, tensor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image
from support.model_repository import write_model_version
from support.servers import RunningServer


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_model_version(root, "net", "1", seed=1)
    write_model_version(root, "net", "2", fmt="onnx", seed=1)
    broken = root / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "model.toml").write_text('format = "onnx"\nweights = "model.onnx"\nlabels = ["a"]\n')
    (root / "net" / "datasets" / "val").mkdir(parents=True)
    (root / "net" / "datasets" / "val" / "dataset.toml").write_text('[generator]\nname = "glassbox.shapes"\n')
    return root


@pytest.fixture(scope="module")
def running(start_server: Callable[..., RunningServer], repo: Path) -> RunningServer:
    return start_server(
        model_repository=repo, limits={"max_image_pixels": 1_000_000, "max_message_bytes": 2 * 1024 * 1024}
    )


@pytest.fixture(scope="module")
def stub(running: RunningServer) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(running.channel)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def pixels_tensor(array: np.ndarray) -> tensor_pb2.Tensor:
    dtype = tensor_pb2.DATA_TYPE_FLOAT32 if array.dtype == np.float32 else tensor_pb2.DATA_TYPE_UINT8
    return tensor_pb2.Tensor(dtype=dtype, shape=list(array.shape), data=array.tobytes())


def test_list_models_shows_versions_and_broken_ones(stub: model_service_pb2_grpc.ModelServiceStub) -> None:
    models = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models}
    assert sorted(models) == ["broken", "net"]
    assert [v.version for v in models["net"].versions] == ["1", "2"]
    assert models["broken"].versions[0].state == pb.MODEL_STATE_FAILED
    assert models["broken"].versions[0].error == "input.height is required"


def test_get_model_describes_everything_a_client_needs(stub: model_service_pb2_grpc.ModelServiceStub) -> None:
    info = stub.GetModel(pb.GetModelRequest(model="net", version="1"), timeout=10).model
    assert info.backend == pb.BACKEND_TORCH and info.state == pb.MODEL_STATE_READY
    assert (info.input_height, info.input_width) == (64, 64)
    assert info.resize_policy == pb.RESIZE_POLICY_DIRECT
    assert list(info.labels) == list(CLASSES)
    assert list(info.normalization.std) == [0.25, 0.25, 0.25]
    assert len(info.weights_digest) == 64
    layers = {layer.name: layer for layer in info.layers}
    assert list(layers["features.14"].output_shape) == [128, 8, 8] and layers["features.14"].cam_compatible
    assert list(info.datasets) == ["val"]
    newest = stub.GetModel(pb.GetModelRequest(model="net"), timeout=10).model
    assert newest.version == "2" and newest.backend == pb.BACKEND_ONNXRUNTIME


def test_get_model_reports_a_broken_version(stub: model_service_pb2_grpc.ModelServiceStub) -> None:
    info = stub.GetModel(pb.GetModelRequest(model="broken"), timeout=10).model
    assert info.state == pb.MODEL_STATE_FAILED and info.error


def test_get_model_still_accepts_the_deprecated_name_field(
    stub: model_service_pb2_grpc.ModelServiceStub,
) -> None:
    """`name` was GetModelRequest's only field before `model`; old clients keep working."""
    old = stub.GetModel(pb.GetModelRequest(name="net", version="1"), timeout=10).model
    new = stub.GetModel(pb.GetModelRequest(model="net", version="1"), timeout=10).model
    assert old == new and new.name == "net"
    both = stub.GetModel(pb.GetModelRequest(model="net", name="net"), timeout=10).model
    assert both.name == "net"
    with pytest.raises(grpc.RpcError) as disagree:
        stub.GetModel(pb.GetModelRequest(model="net", name="broken"), timeout=10)
    assert disagree.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert disagree.value.details().startswith("name: names model 'broken' but model is 'net'")
    for request, field in (
        (pb.GetModelRequest(model="nope"), "model"),
        (pb.GetModelRequest(name="nope"), "name"),
    ):
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetModel(request, timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert missing.value.details().startswith(f"{field}: ")


def test_predict_matches_in_process_logits_on_both_backends(
    stub: model_service_pb2_grpc.ModelServiceStub, running: RunningServer
) -> None:
    batch = generate(3, seed=5)
    arrays = [(img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for img in batch.images]
    images = [tensor_pb2.Image(encoded=png(a)) for a in arrays]
    model = running.server.context.repository.get("net", "1")
    expected = model.logits(torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for a in arrays]))
    for version in ("1", "2"):
        response = stub.Predict(
            pb.PredictRequest(model="net", version=version, images=images, top_k=6), timeout=10
        )
        assert response.version == version and len(response.predictions) == 3
        for row, prediction in enumerate(response.predictions):
            logits = {c.index: c.logit for c in prediction.classes}
            assert np.allclose([logits[i] for i in range(6)], expected[row].numpy(), atol=1e-4)
            probabilities = [c.probability for c in prediction.classes]
            assert probabilities == sorted(probabilities, reverse=True)
            assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
            assert all(c.label == CLASSES[c.index] for c in prediction.classes)


def test_predict_accepts_pixel_tensors(stub: model_service_pb2_grpc.ModelServiceStub) -> None:
    floats = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32)
    uint8 = (floats.transpose(1, 2, 0) * 255).round().astype(np.uint8)
    response = stub.Predict(
        pb.PredictRequest(
            model="net",
            images=[
                tensor_pb2.Image(pixels=pixels_tensor(floats)),
                tensor_pb2.Image(pixels=pixels_tensor(uint8)),
            ],
            top_k=1,
        ),
        timeout=10,
    )
    assert len(response.predictions) == 2 and len(response.predictions[0].classes) == 1


def test_health_overall_per_service_and_per_model(running: RunningServer) -> None:
    health = health_pb2_grpc.HealthStub(running.channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", "glassbox.v1.ModelService", "model/net", "model/net/1"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == serving
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="model/broken"), timeout=5).status == not_serving
    )


def test_reflection_lists_the_services(running: RunningServer) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"glassbox.v1.ModelService", "grpc.health.v1.Health"} <= names


BAD_REQUESTS = [
    (pb.PredictRequest(model="nope", images=[]), grpc.StatusCode.NOT_FOUND, "model 'nope'"),
    (
        pb.PredictRequest(model="net", version="9"),
        grpc.StatusCode.NOT_FOUND,
        "version: model 'net' has no version '9'",
    ),
    (pb.PredictRequest(model="../net"), grpc.StatusCode.NOT_FOUND, "model '../net'"),
    (pb.PredictRequest(model="broken"), grpc.StatusCode.FAILED_PRECONDITION, "not ready"),
    (pb.PredictRequest(model="net"), grpc.StatusCode.INVALID_ARGUMENT, "images: at least one image"),
    (
        pb.PredictRequest(model="net", images=[tensor_pb2.Image()]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "images[0]",
    ),
    (
        pb.PredictRequest(model="net", images=[tensor_pb2.Image(encoded=b"\x89PNG\r\n\x1a\n garbage")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "images[0].encoded: cannot decode",
    ),
    (
        pb.PredictRequest(
            model="net", images=[tensor_pb2.Image(encoded=png(np.zeros((64, 64, 3), np.uint8))[:60])]
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "images[0].encoded",
    ),
    (
        pb.PredictRequest(
            model="net",
            images=[tensor_pb2.Image(pixels=tensor_pb2.Tensor(dtype=1, shape=[3, 8, 8], data=b"\0" * 10))],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "images[0].pixels.data: data has 10 bytes but shape [3, 8, 8] of float32 needs 768",
    ),
    (
        pb.PredictRequest(
            model="net",
            images=[tensor_pb2.Image(pixels=pixels_tensor(np.full((3, 8, 8), np.nan, np.float32)))],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "images[0].pixels.data: pixels contain NaN or Inf",
    ),
    (
        pb.PredictRequest(
            model="net", images=[tensor_pb2.Image(pixels=pixels_tensor(np.zeros((8, 8, 4), np.uint8)))]
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "images[0].pixels.shape",
    ),
    (
        pb.PredictRequest(
            model="net", images=[tensor_pb2.Image(pixels=pixels_tensor(np.zeros((3, 0, 8), np.float32)))]
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "zero size",
    ),
    (
        pb.PredictRequest(model="net", images=[tensor_pb2.Image(pixels=tensor_pb2.Tensor(shape=[1]))]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "images[0].pixels.dtype",
    ),
    (
        pb.PredictRequest(
            model="net", images=[tensor_pb2.Image(encoded=png(np.zeros((1200, 1000, 3), np.uint8)))]
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "over the limit of 1000000",
    ),
    (
        pb.PredictRequest(
            model="net",
            images=[tensor_pb2.Image(pixels=pixels_tensor(np.zeros((8, 8, 3), np.uint8)))],
            top_k=7,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "top_k: top_k must be in 0..6",
    ),
]


@pytest.mark.parametrize(("request_", "code", "message"), BAD_REQUESTS)
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(
    stub: model_service_pb2_grpc.ModelServiceStub,
    request_: pb.PredictRequest,
    code: grpc.StatusCode,
    message: str,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request_, timeout=10)
    assert info.value.code() == code
    assert message in info.value.details()
    assert stub.ListModels(pb.ListModelsRequest(), timeout=10).models


def test_oversized_message_is_resource_exhausted(stub: model_service_pb2_grpc.ModelServiceStub) -> None:
    request = pb.PredictRequest(model="net", images=[tensor_pb2.Image(encoded=b"\0" * (3 * 1024 * 1024))])
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.ListModels(pb.ListModelsRequest(), timeout=10).models


def test_internal_errors_are_generic_and_logged(
    stub: model_service_pb2_grpc.ModelServiceStub,
    running: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = running.server.context.repository.get("net", "1")

    def explode(pixels: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("secret detail: /internal/path")

    monkeypatch.setattr(model, "logits", explode)
    image = tensor_pb2.Image(pixels=pixels_tensor(np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(pb.PredictRequest(model="net", version="1", images=[image]), timeout=10)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in info.value.details() and "ref " in info.value.details()
    assert "secret detail" in caplog.text
    monkeypatch.undo()
    assert stub.Predict(pb.PredictRequest(model="net", version="1", images=[image]), timeout=10).predictions
