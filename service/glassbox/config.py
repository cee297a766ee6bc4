"""Typed settings: embedded defaults, overridden by a TOML file, then `GLASSBOX_*` environment
variables, then command-line flags (highest). Nested sections use `__` in environment names, e.g.
`GLASSBOX_CACHE__MAX_BYTES=268435456`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class LimitSettings(BaseModel):
    """Request limits: every one has a safe default and is checked before work starts."""

    max_message_bytes: int = Field(64 * 1024 * 1024, gt=0, description="largest gRPC message, both ways")
    max_image_pixels: int = Field(40_000_000, gt=0, description="largest decoded image, width × height")
    max_batch_images: int = Field(64, gt=0, description="most images in one request")


class AttributionSettings(BaseModel):
    """Caps and batching for attribution methods."""

    max_samples: int = Field(1024, gt=0, description="cap on SmoothGrad/LIME/KernelSHAP samples")
    max_steps: int = Field(512, gt=0, description="cap on integrated-gradients steps")
    max_perturbations: int = Field(16384, gt=0, description="cap on occlusion windows")
    memory_budget_bytes: int = Field(
        0, ge=0, description="activation memory one batched evaluation may use; 0 = a quarter of free memory"
    )


class CacheSettings(BaseModel):
    """Result cache: in-process LRU by default, Redis when `redis_url` is set."""

    enabled: bool = True
    redis_url: str = Field("", description="redis:// or rediss:// URL; empty = in-process cache")
    namespace: str = "glassbox"
    max_bytes: int = Field(256 * 1024 * 1024, gt=0, description="in-process cache bound")
    ttl_seconds: int = Field(3600, gt=0, description="default time to live of an entry")


class MetricsSettings(BaseModel):
    """Prometheus exposition on an HTTP port of its own."""

    port: int = Field(9090, ge=0, le=65535, description="0 disables the /metrics endpoint")
    address: str = "127.0.0.1"


class Settings(BaseSettings):
    """Everything `glassbox serve` needs, with embedded defaults that run the shipped models."""

    model_config = SettingsConfigDict(env_prefix="GLASSBOX_", env_nested_delimiter="__", extra="forbid")

    address: str = Field("127.0.0.1:50051", description="host:port the gRPC server listens on")
    model_repository: Path = Field(Path("models"), description="root of the model repository")
    worker_threads: int = Field(8, gt=0, description="gRPC handler threads")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when present")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = torch's default")
    grace_period_seconds: float = Field(10.0, ge=0, description="time in-flight calls get on SIGTERM")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    reflection: bool = True
    limits: LimitSettings = LimitSettings()
    attribution: AttributionSettings = AttributionSettings()
    cache: CacheSettings = CacheSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Defaults < TOML file < GLASSBOX_* environment < explicit overrides (flags)."""
    from_file: dict[str, Any] = {}
    if config_file is not None:
        from_file = tomllib.loads(config_file.read_text(encoding="utf-8"))
    env_only = Settings()
    merged = _deep_merge(from_file, env_only.model_dump(exclude_unset=True))
    return Settings(**_deep_merge(merged, {k: v for k, v in overrides.items() if v is not None}))


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
