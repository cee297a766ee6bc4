"""Turn a parsed model.toml into a loaded backend model. Nothing here unpickles arbitrary objects:
safetensors, `torch.load(weights_only=True)`, TorchScript and ONNX only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file

from glassbox.backends.base import Model
from glassbox.backends.forward_selection import TunedTorchModel
from glassbox.backends.onnx_backend import OnnxModel
from glassbox.core.model_config import ModelConfig, ModelFormat
from glassbox.models.architectures import build_architecture


def file_digest(path: Path) -> str:
    """Hex SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(
    name: str, version: str, folder: Path, config: ModelConfig, *, device: torch.device, onnx_threads: int = 0
) -> Model:
    """Load one model version onto `device` in the backend its format needs."""
    weights = folder / config.weights
    if not weights.is_file():
        raise FileNotFoundError(f"weights file {config.weights!r} is missing")
    digest = file_digest(weights)
    if config.format is ModelFormat.ONNX:
        return OnnxModel(
            name,
            version,
            config,
            digest,
            weights.read_bytes(),
            use_cuda=device.type == "cuda",
            threads=onnx_threads,
        )
    if config.format is ModelFormat.TORCHSCRIPT:
        net = torch.jit.load(str(weights), map_location=device)
    else:
        assert config.architecture is not None  # checked by the config parser
        net = build_architecture(config.architecture, len(config.labels), **config.architecture_args)
        if config.format is ModelFormat.SAFETENSORS:
            state = load_file(str(weights))
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise ValueError("state_dict weights must hold a mapping of tensor names to tensors")
        net.load_state_dict(state, strict=True)
    return TunedTorchModel(name, version, config, digest, net, device, onnx_threads=onnx_threads)
