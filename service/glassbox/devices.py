"""Which torch device a process computes on: one setting shared by `glassbox serve` and `glassbox worker`."""

from __future__ import annotations

import torch


def resolve_device(setting: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is a configuration error."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)
