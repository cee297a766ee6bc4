"""Helpers shared by the inspection tests: jobs submitted and watched through the real JobService,
wire conversions, and the tests' own reads of the demo model's layers (a forward hook of the test's
own, so no check trusts the values the service reports)."""

from __future__ import annotations

import grpc
import pytest
from glassbox_client._generated.glassbox.v1 import datasets_pb2, job_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb

from support.wire import image_proto as image_proto
from support.wire import layer_output as layer_output
from support.wire import tensor_of as tensor_of

MODEL = "shapes"
ONNX_MODEL = "shapes-onnx"
NAMED_SET = "shapes-val"
FINISHED = (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED)


def named(limit: int = 0) -> datasets_pb2.ImageSet:
    return datasets_pb2.ImageSet(named=NAMED_SET, limit=limit)


def run_job(channel: grpc.Channel, timeout: float = 120.0, **spec: object) -> pb.Job:
    """Submit one job (`kind=spec_message`), watch it to its end, and return it SUCCEEDED."""
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    job = stub.SubmitJob(pb.SubmitJobRequest(**spec), timeout=30).job
    updates = list(stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=timeout))
    final = updates[-1].job
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error.message
    assert final.progress.step == final.progress.total > 0
    return final


def submit_error(channel: grpc.Channel, **spec: object) -> grpc.RpcError:
    """Submit a job that must be refused; returns the error."""
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.SubmitJob(pb.SubmitJobRequest(**spec), timeout=30)
    return caught.value


def assert_refused(error: grpc.RpcError, code: grpc.StatusCode, field: str) -> None:
    """The error has the code and its message starts with the field it is about."""
    assert error.code() == code, error.details()
    assert error.details().startswith(f"{field}:"), error.details()
