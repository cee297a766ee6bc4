"""Shared by the robustness tests: the demo `shapes` model and a few of its held-out images."""

from __future__ import annotations

import copy
from functools import cache

import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox.config import AttributionSettings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import NEVER_CANCELLED
from glassbox.models.repository import ModelRepository
from glassbox.serving.execution import SCHEDULED

from support.paths import MODELS


@cache
def repository() -> ModelRepository:
    repo = ModelRepository(MODELS, device=torch.device("cpu"))
    repo.load_all()
    return repo


def shapes() -> TorchModel:
    model = repository().get("shapes")
    assert isinstance(model, TorchModel)
    return model


def images(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = repository().dataset("shapes", "shapes-val", max_pixels=10**8)
    assert data.labels is not None
    return data.images[:count], data.labels[:count]


def call_context(model: TorchModel | None = None) -> CallContext:
    return CallContext(model or shapes(), NEVER_CANCELLED, AttributionSettings(), compute=SCHEDULED)


def contiguous_shapes() -> TorchModel:
    """The demo model with contiguous conv weights: torchattacks' PGDL2 `.view`s the input gradient, which
    channels_last weights make channels_last. Both sides of the L2 comparison use this copy."""
    model = copy.copy(shapes())
    model.module = copy.deepcopy(model.module).to(memory_format=torch.contiguous_format)
    return model
