"""Helpers shared by the generative tests: jobs submitted and watched through the real JobService of a
server on the shipped model repository, wire conversions, and independent reads of the demo model's
layers (a forward hook of the test's own, so a check never trusts the values a job reports)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import numpy as np
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox.demo.shapes import generate
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc, tensor_pb2

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


def image_proto(pixels: torch.Tensor) -> tensor_pb2.Image:
    """A [3, H, W] float image as a wire Image (raw float32 pixels)."""
    array = pixels.detach().float().numpy().astype("<f4")
    return tensor_pb2.Image(
        pixels=tensor_pb2.Tensor(
            dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=list(array.shape), data=array.tobytes()
        )
    )


def tensor_of(tensor: tensor_pb2.Tensor) -> torch.Tensor:
    """A float32 wire Tensor as a torch tensor."""
    assert tensor.dtype == tensor_pb2.DATA_TYPE_FLOAT32
    return torch.from_numpy(np.frombuffer(tensor.data, dtype="<f4").reshape(tuple(tensor.shape)).copy())


def layer_output(model: TorchModel, layer: str, pixels: torch.Tensor) -> torch.Tensor:
    """The layer's output for images [B, 3, H, W], read by a hook of this test's own."""
    captured: list[torch.Tensor] = []
    handle = model.module.net.get_submodule(layer).register_forward_hook(
        lambda _m, _i, output: captured.append(output.detach().clone())
    )
    try:
        with torch.no_grad():
            model.module(pixels.to(model.device))
    finally:
        handle.remove()
    return captured[0].cpu()
