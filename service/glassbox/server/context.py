"""The composition root handed to every servicer: settings and the long-lived services."""

from __future__ import annotations

from dataclasses import dataclass

from glassbox.cache.service import CacheService
from glassbox.config import Settings
from glassbox.jobs.engine import JobEngine
from glassbox.methods.registry import supported_methods
from glassbox.metrics import Metrics
from glassbox.models.repository import ModelRepository, ModelVersion


@dataclass
class ServerContext:
    settings: Settings
    repository: ModelRepository
    metrics: Metrics
    cache: CacheService
    jobs: JobEngine

    def supported_methods(self, entry: ModelVersion) -> list[str]:
        return supported_methods(entry.model) if entry.model is not None else []
