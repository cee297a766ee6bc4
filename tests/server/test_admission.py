"""Admission over gRPC: each refusal arrives at once, before any work, with its code and detail; jobs run
through the same compute scheduler at background priority; metrics show what the scheduler did."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import grpc
import pytest
from glassbox_client import GlassboxClient, ResourceExhaustedError
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import (
    attribution_service_pb2_grpc,
    generative_pb2,
    job_service_pb2,
    job_service_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
    tensor_pb2,
)
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from PIL import Image
from support.servers import RunningServer


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def retry_delay(error: grpc.RpcError) -> float | None:
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server(cache={"enabled": False}, scheduler={"memory_budget_bytes": 64 * 2**20})


def occlusion(stride: int) -> pb.AttributeRequest:
    return pb.AttributeRequest(
        model="shapes",
        images=[tensor_pb2.Image(encoded=png(64, 64))],
        occlusion=pb.OcclusionParams(window=2, stride=stride),
        targets=pb.TargetSpec(class_indices=[0]),
    )


def test_a_call_that_cannot_meet_its_deadline_is_refused_at_once_with_a_retry_delay(
    server: RunningServer,
) -> None:
    stub = attribution_service_pb2_grpc.AttributionServiceStub(server.channel)
    stub.Attribute(occlusion(stride=2), timeout=60)  # teaches the scheduler the model's forward cost
    passes = server.server.metrics.registry.get_sample_value(
        "glassbox_passes_total", {"method": "occlusion", "direction": "forward"}
    )
    with pytest.raises(grpc.RpcError) as refused:
        stub.Attribute(occlusion(stride=1), timeout=0.2)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "deadline" in refused.value.details()
    assert retry_delay(refused.value) is not None
    with GlassboxClient(server.address) as glassbox, pytest.raises(ResourceExhaustedError) as typed:
        glassbox.attribute(png(64, 64), model="shapes", method="occlusion", window=2, stride=1, timeout=0.2)
    assert typed.value.retry_after is not None and typed.value.retry_after > 0
    after = server.server.metrics.registry.get_sample_value(
        "glassbox_passes_total", {"method": "occlusion", "direction": "forward"}
    )
    assert after == passes, "a refused call ran no pass"


def test_images_over_the_memory_budget_are_refused_before_decoding(server: RunningServer) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    huge = tensor_pb2.Image(encoded=png(3000, 3000))  # 9 Mpx: about 270 MB to decode, budget 64 MiB
    with pytest.raises(grpc.RpcError) as refused:
        stub.Predict(model_service_pb2.PredictRequest(model="shapes", images=[huge]), timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "memory budget" in refused.value.details()
    small = tensor_pb2.Image(encoded=png(64, 64))
    assert stub.Predict(
        model_service_pb2.PredictRequest(model="shapes", images=[small]), timeout=30
    ).predictions


def test_a_response_over_the_message_limit_is_refused_naming_the_option(
    start_server: Callable[..., RunningServer],
) -> None:
    narrow = start_server(cache={"enabled": False}, limits={"max_message_bytes": 4 * 2**20})
    stub = attribution_service_pb2_grpc.AttributionServiceStub(narrow.channel)
    request = pb.AttributeRequest(
        model="shapes",
        images=[tensor_pb2.Image(encoded=png(1200, 1200))],
        saliency=pb.SaliencyParams(),
        output=pb.OutputOptions(map=True, original_size=True, aggregation=pb.AGGREGATION_NONE),
    )
    with pytest.raises(grpc.RpcError) as refused:
        stub.Attribute(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("output.original_size")
    request.output.original_size = False
    assert stub.Attribute(request, timeout=30).images[0].attributions


def test_jobs_run_through_the_scheduler_at_background_priority(server: RunningServer) -> None:
    jobs = job_service_pb2_grpc.JobServiceStub(server.channel)
    submitted = jobs.SubmitJob(
        job_service_pb2.SubmitJobRequest(
            class_visualisation=generative_pb2.ClassVisualisationSpec(
                model="shapes", target=generative_pb2.ClassRef(index=1), steps=3
            )
        ),
        timeout=30,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = jobs.GetJob(job_service_pb2.GetJobRequest(job_id=submitted.job.id), timeout=30).job
        if job.state == job_service_pb2.JOB_STATE_SUCCEEDED:
            break
        time.sleep(0.05)
    assert job.state == job_service_pb2.JOB_STATE_SUCCEEDED
    registry = server.server.metrics.registry
    assert registry.get_sample_value(
        "glassbox_scheduler_queue_seconds_count", {"model": "", "priority": "background"}
    )
    assert registry.get_sample_value(
        "glassbox_scheduler_batch_rows_count", {"model": "shapes", "kind": "forward"}
    )
