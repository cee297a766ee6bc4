"""Bad input that used to get through as INTERNAL or as an unbounded echo: each is now INVALID_ARGUMENT
or NOT_FOUND with a message that names the field, and the server keeps serving."""

from __future__ import annotations

import io

import grpc
import pytest
from glassbox_client._generated.glassbox.v1 import (
    attribution_service_pb2,
    attribution_service_pb2_grpc,
    job_service_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    tensor_pb2,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from support.servers import RunningServer

OK_IMAGE = tensor_pb2.Image(
    encoded=(lambda buffer: (Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "PNG"), buffer)[1])(
        io.BytesIO()
    ).getvalue()
)


def _serving(server: RunningServer) -> str:
    stub = health_pb2_grpc.HealthStub(server.channel)
    status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def _predict_error(server: RunningServer, request: model_service_pb2.PredictRequest) -> grpc.RpcError:
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    return error.value


def _pixels(shape: list[int], data: bytes = b"") -> model_service_pb2.PredictRequest:
    tensor = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_UINT8, shape=shape, data=data)
    return model_service_pb2.PredictRequest(model="shapes", images=[tensor_pb2.Image(pixels=tensor)])


def test_a_tensor_with_more_dimensions_than_numpy_allows_is_invalid(server: RunningServer) -> None:
    error = _predict_error(server, _pixels([1] * 65, b"\x01"))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("images[0].pixels.shape: shape has 65 dimensions")
    assert _serving(server) == "SERVING"


@pytest.mark.parametrize("shape", [[3, 2**62, 0], [0, 2**40, 2**40], [2**63 - 1, 0]])
def test_an_empty_tensor_with_a_giant_dimension_is_invalid(server: RunningServer, shape: list[int]) -> None:
    error = _predict_error(server, _pixels(shape))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("images[0].pixels.shape:")
    assert _serving(server) == "SERVING"


def test_channel_scope_on_a_linear_layer_is_invalid_naming_the_scope(server: RunningServer) -> None:
    stub = attribution_service_pb2_grpc.AttributionServiceStub(server.channel)
    request = attribution_service_pb2.AttributeRequest(
        model="shapes",
        images=[OK_IMAGE],
        neuron_gradient=attribution_service_pb2.NeuronGradientParams(
            layer="classifier.2", scope=attribution_service_pb2.NEURON_SCOPE_CHANNEL, index=[0]
        ),
    )
    with pytest.raises(grpc.RpcError) as error:
        stub.Attribute(request, timeout=60)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("neuron_gradient.scope: NEURON_SCOPE_CHANNEL needs a layer")
    assert _serving(server) == "SERVING"


@pytest.mark.parametrize(
    "method, message",
    [
        ("/glassbox.v1.ModelService/Predict", "glassbox.v1.PredictRequest"),
        ("/glassbox.v1.AttributionService/Attribute", "glassbox.v1.AttributeRequest"),
        ("/glassbox.v1.JobService/GetJob", "glassbox.v1.GetJobRequest"),
    ],
)
@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff\xff",  # a field tag with no end
        b"\x0a\x05ab",  # a string field longer than the message
        b"\x0a\x02\xc3\x28",  # field 1 (a string) that is not UTF-8
        b"\x1a" + b"\x80" * 11,  # a length that is not a varint
    ],
)
def test_bytes_that_do_not_parse_are_invalid_naming_the_message(
    server: RunningServer, method: str, message: str, data: bytes
) -> None:
    call = server.channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as error:
        call(data, timeout=10)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert error.value.details().startswith(f"request: the bytes do not parse as {message}")
    assert _serving(server) == "SERVING"


def test_unparsable_bytes_on_a_streaming_call_are_invalid(server: RunningServer) -> None:
    call = server.channel.unary_stream("/glassbox.v1.JobService/WatchJob")
    with pytest.raises(grpc.RpcError) as error:
        list(call(b"\xff\xff\xff", timeout=10))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "glassbox.v1.WatchJobRequest" in error.value.details()


@pytest.mark.parametrize("length", [16_000, 20_000])
def test_a_huge_model_name_is_refused_with_a_bounded_echo(server: RunningServer, length: int) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    name = "m" * length
    for field, call in (
        ("name", lambda: stub.GetModel(model_service_pb2.GetModelRequest(name=name), timeout=10)),
        (
            "model",
            lambda: stub.Predict(model_service_pb2.PredictRequest(model=name, images=[OK_IMAGE]), timeout=10),
        ),
    ):
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
        assert error.value.details().startswith(f"{field}: ")
        assert f"{length} characters" in error.value.details()
        assert len(error.value.details()) < 300


def test_a_huge_version_and_layer_name_are_echoed_bounded(server: RunningServer) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as error:
        stub.GetModel(model_service_pb2.GetModelRequest(name="shapes", version="9" * 18_000), timeout=10)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("version: ") and len(error.value.details()) < 300

    attribution = attribution_service_pb2_grpc.AttributionServiceStub(server.channel)
    request = attribution_service_pb2.AttributeRequest(
        model="shapes", images=[OK_IMAGE], grad_cam=attribution_service_pb2.GradCamParams(layer="L" * 20_000)
    )
    with pytest.raises(grpc.RpcError) as error:
        attribution.Attribute(request, timeout=30)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("grad_cam.layer: ")
    assert "(20000 characters)" in error.value.details() and len(error.value.details()) < 400


def test_a_huge_job_id_is_not_found_with_a_bounded_echo(server: RunningServer) -> None:
    call = server.channel.unary_unary(
        "/glassbox.v1.JobService/GetJob",
        request_serializer=job_service_pb2.GetJobRequest.SerializeToString,
        response_deserializer=job_service_pb2.GetJobResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as error:
        call(job_service_pb2.GetJobRequest(job_id="j" * 20_000), timeout=10)
    assert error.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    assert error.value.details().startswith("job_id: ") and len(error.value.details()) < 300
    assert _serving(server) == "SERVING"
