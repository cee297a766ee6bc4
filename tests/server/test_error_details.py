"""Errors a machine can read, end to end on the shipped models: each failure carries its stable
`google.rpc.ErrorInfo` reason (domain glassbox.v1) with metadata and a `BadRequest` naming the field,
and the Python client exposes them typed (`reason`, `metadata`, `field_violations`, `field`) without
reading the message text."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from glassbox.core.reasons import REASONS, Reason
from glassbox_client import GlassboxClient
from glassbox_client._generated.glassbox.v1 import datasets_pb2, inspection_pb2
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as job_pb
from glassbox_client.errors import (
    FailedPreconditionError,
    GlassboxError,
    InvalidArgumentError,
    NotFoundError,
    error_from_rpc,
)
from support.servers import RunningServer

ROOT = Path(__file__).resolve().parents[2]
STAR = (ROOT / "docs" / "images" / "star.png").read_bytes()


def test_every_reason_is_documented_with_its_code() -> None:
    assert set(REASONS) == set(Reason)
    for reason in Reason:
        assert reason.code in grpc.StatusCode.__members__ and reason.description
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = [reason.value for reason in Reason if f"`{reason.value}`" not in operations]
    assert not missing, f"docs/operations.md does not list {missing}"


def caught(call) -> GlassboxError:
    with pytest.raises(GlassboxError) as error:
        call()
    return error.value


def test_not_found_reasons_name_the_field_and_the_thing(server: RunningServer) -> None:
    with GlassboxClient(server.address, timeout=30) as glassbox:
        model = caught(lambda: glassbox.model("no-such-model"))
        assert isinstance(model, NotFoundError)
        assert (model.reason, model.field, model.metadata) == (
            "MODEL_NOT_FOUND",
            "model",
            {"model": "no-such-model"},
        )
        assert model.field_violations[0].description == model.message
        version = caught(lambda: glassbox.model("shapes", "999"))
        assert (version.reason, version.field) == ("VERSION_NOT_FOUND", "version")
        assert version.metadata == {"model": "shapes", "version": "999"}


def test_attribution_failures_say_which_precondition_or_layer(server: RunningServer) -> None:
    with GlassboxClient(server.address, timeout=60) as glassbox:
        onnx = caught(lambda: glassbox.explain(STAR, model="shapes-onnx", method="saliency"))
        assert isinstance(onnx, FailedPreconditionError)
        assert (onnx.reason, onnx.field) == ("METHOD_NOT_SUPPORTED", "method")
        assert onnx.metadata["method"] == "saliency" and onnx.metadata["model"] == "shapes-onnx"
        layer = caught(
            lambda: glassbox.explain(STAR, model="shapes", method="grad_cam", layer="features.999")
        )
        assert isinstance(layer, InvalidArgumentError)
        assert (layer.reason, layer.field) == ("LAYER_NOT_FOUND", "grad_cam.layer")
        assert layer.metadata == {"model": "shapes", "layer": "features.999"}
        bad = caught(lambda: glassbox.explain(b"not an image", model="shapes", method="saliency"))
        assert bad.reason == "INVALID_ARGUMENT" and bad.field and bad.field.startswith("images[0]")


def test_job_spec_errors_carry_the_reason_under_the_spec_field(server: RunningServer) -> None:
    spec = inspection_pb2.EmbeddingMapSpec(model="shapes", images=datasets_pb2.ImageSet(named="no-such-set"))
    stub_call = server.channel.unary_unary(
        "/glassbox.v1.JobService/SubmitJob",
        request_serializer=job_pb.SubmitJobRequest.SerializeToString,
        response_deserializer=job_pb.SubmitJobResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as raw:
        stub_call(job_pb.SubmitJobRequest(embedding_map=spec), timeout=30)
    error = error_from_rpc(raw.value, "SubmitJob")
    assert isinstance(error, NotFoundError)
    assert (error.reason, error.field) == ("DATASET_NOT_FOUND", "embedding_map.images.named")
    assert error.metadata == {"model": "shapes", "dataset": "no-such-set"}


def test_a_message_that_looks_like_a_field_is_not_parsed_as_one() -> None:
    """The field comes only from the details: an error without a BadRequest has no field, whatever its
    message says."""
    error = GlassboxError(grpc.StatusCode.UNAVAILABLE, "images[0]: looks like a field prefix")
    assert error.field is None and error.reason is None and error.field_violations == ()
