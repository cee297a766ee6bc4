"""Helpers shared by the generative tests: jobs submitted and watched through the real JobService of a
server on the shipped model repository, wire conversions, and independent reads of the demo model's
layers (a forward hook of the test's own, so a check never trusts the values a job reports)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from glassbox.demo.shapes import generate
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc

from support.wire import image_proto as image_proto
from support.wire import layer_output as layer_output
from support.wire import tensor_of as tensor_of

MODEL = "shapes"
ONNX_MODEL = "shapes-onnx"
IMAGES = generate(12, seed=7)
"""Twelve demo images (two of each class) with their labels."""

FINISHED = (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED)


@dataclass
class Watched:
    """A job watched to its end: every update in order, and the previews that came with them."""

    updates: list[pb.WatchJobResponse]

    @property
    def job(self) -> pb.Job:
        return self.updates[-1].job

    @property
    def steps(self) -> list[int]:
        return [u.job.progress.step for u in self.updates if u.job.state == pb.JOB_STATE_RUNNING]

    @property
    def previews(self) -> list[tuple[int, bytes]]:
        return [(u.job.progress.step, u.preview_png) for u in self.updates if u.preview_png]


def run_job(
    channel: grpc.Channel, timeout: float = 120.0, preview_every_steps: int = 0, **spec: object
) -> Watched:
    """Submit one job (`kind=spec_message`) and watch it to its final state."""
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    job = stub.SubmitJob(pb.SubmitJobRequest(**spec), timeout=30).job
    request = pb.WatchJobRequest(job_id=job.id, preview_every_steps=preview_every_steps)
    updates = list(stub.WatchJob(request, timeout=timeout))
    assert updates[-1].job.state in FINISHED
    return Watched(updates)


def submit_error(channel: grpc.Channel, **spec: object) -> grpc.RpcError:
    """Submit a job that must be refused; returns the error."""
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    try:
        stub.SubmitJob(pb.SubmitJobRequest(**spec), timeout=30)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError(f"SubmitJob accepted {spec}")
