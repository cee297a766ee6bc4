"""Helpers the job tests share: images to the wire and back, and a layer's output read by a test's own
hook (never the service's)."""

from __future__ import annotations

import numpy as np
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox_client._generated.glassbox.v1 import tensor_pb2


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
