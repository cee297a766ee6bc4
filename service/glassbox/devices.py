"""Which torch device a process computes on, and how repeatably: shared by `glassbox serve` and
`glassbox worker`."""

from __future__ import annotations

import os

import torch


def resolve_device(setting: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is a configuration error."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def use_deterministic_algorithms() -> None:
    """Make GPU results repeatable: cuDNN's autotuner and atomics-based kernels (e.g. some convolution
    backward passes) otherwise vary between runs. Must run before CUDA is first used (cuBLAS reads its
    workspace setting then); operations without a deterministic kernel only warn."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def use_full_float32_precision() -> None:
    """Turn TF32 off for matrix products and convolutions. On Ampere and newer GPUs TF32 is torch's
    default for convolutions and keeps 10 mantissa bits, which moves CUDA attribution maps by up to ~1e-3
    of their maximum; with it off they agree with the CPU and with Captum to 1e-4, as the service promises."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
