"""`model.toml`: the description of one model version, parsed into a typed, validated `ModelConfig`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from glassbox.core.images import InputSpec, ResizePolicy


class ModelFormat(StrEnum):
    """How the weights are stored. None of them unpickles arbitrary objects."""

    SAFETENSORS = "safetensors"  # architecture by name + safetensors weights
    STATE_DICT = "state_dict"  # architecture by name + torch.load(weights_only=True)
    TORCHSCRIPT = "torchscript"  # torch.jit.load
    ONNX = "onnx"  # onnxruntime


class ExplainMode(StrEnum):
    """`[explain] mode`: how the network is laid out and run for explanations.

    FAST (the default): convolution weights channels_last on a CPU, BatchNorm folded for the input-gradient
    methods (unless `fold_batchnorm = false`), the no-grad forward on the engine measured fastest at load.
    Each changes only float rounding, but a rounding-level change flips a ReLU whose input is within ~1e-7
    of zero, which moves a gradient map by up to ~1% of its maximum on a deep network (densenet121).
    EXACT: the network as the user built it (contiguous layout, no folding, eager torch for every pass),
    so maps reproduce Captum or pytorch-grad-cam run on the user's own network to float32 rounding."""

    FAST = "fast"
    EXACT = "exact"


FORWARD_ENGINES = ("auto", "torch", "torch-channels_last", "onnxruntime")
"""`[explain] forward_engine`: "auto" times the candidates at load (backends/forward_selection.py);
a named engine is used as configured (and the model fails to load if it cannot run or disagrees)."""


class ConfigError(ValueError):
    """model.toml is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class BatchingConfig:
    """`[batching]`: how the compute scheduler merges compatible units of different calls on this model
    (Triton's dynamic batcher). None means the device's default (glassbox.serving.units)."""

    max_rows: int | None = None  # most network rows in one merged batch
    max_queue_delay_ms: float | None = None  # how long a unit may wait for others to join its batch


@dataclass(frozen=True)
class ModelConfig:
    """One version folder's model.toml."""

    format: ModelFormat
    weights: str
    labels: tuple[str, ...]
    input: InputSpec
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    architecture: str | None = None
    architecture_args: dict[str, Any] = field(default_factory=dict)
    default_cam_layer: str | None = None
    fold_batchnorm: bool = True
    mode: ExplainMode = ExplainMode.FAST
    forward_engine: str = "auto"
    description: str = ""
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    extra: dict[str, Any] = field(default_factory=dict)


def load_config(folder: Path) -> ModelConfig:
    """Parse and validate `folder/model.toml`; raise ConfigError naming the bad key."""
    path = folder / "model.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} is missing") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_config(raw, folder)


def parse_config(raw: dict[str, Any], folder: Path) -> ModelConfig:
    """Validate a parsed model.toml dictionary."""
    try:
        fmt = ModelFormat(raw.get("format", ""))
    except ValueError as exc:
        choices = ", ".join(f.value for f in ModelFormat)
        raise ConfigError(f"format must be one of {choices}, got {raw.get('format')!r}") from exc
    weights = _require(raw, "weights", str)
    weights_path = (folder / weights).resolve()
    if folder.resolve() not in weights_path.parents:
        raise ConfigError(f"weights {weights!r} points outside the version folder")
    architecture = raw.get("architecture")
    if fmt in (ModelFormat.SAFETENSORS, ModelFormat.STATE_DICT) and not isinstance(architecture, str):
        raise ConfigError(f"architecture is required for format {fmt.value!r}")
    labels = _labels(raw, folder)
    section = raw.get("input", {})
    height = int(_require(section, "height", int, section="input"))
    width = int(_require(section, "width", int, section="input"))
    if height <= 0 or width <= 0:
        raise ConfigError(f"input size must be positive, got {height}x{width}")
    try:
        resize = ResizePolicy(section.get("resize", "direct"))
    except ValueError as exc:
        raise ConfigError(
            f"input.resize must be 'direct' or 'resize_center_crop', got {section.get('resize')!r}"
        ) from exc
    crop_fraction = float(section.get("crop_fraction", 0.875))
    if not 0.0 < crop_fraction <= 1.0:
        raise ConfigError(f"input.crop_fraction must be in (0, 1], got {crop_fraction}")
    mean = _triple(section, "mean", (0.0, 0.0, 0.0))
    std = _triple(section, "std", (1.0, 1.0, 1.0))
    if any(s <= 0 for s in std):
        raise ConfigError(f"input.std must be positive, got {std}")
    explain = raw.get("explain", {})
    mode, fold, engine = _explain_mode(explain)
    known = {
        "format",
        "weights",
        "architecture",
        "architecture_args",
        "labels",
        "labels_file",
        "input",
        "explain",
        "description",
        "batching",
    }
    return ModelConfig(
        format=fmt,
        weights=weights,
        labels=labels,
        input=InputSpec(height=height, width=width, resize=resize, crop_fraction=crop_fraction),
        mean=mean,
        std=std,
        architecture=architecture,
        architecture_args=dict(raw.get("architecture_args", {})),
        default_cam_layer=explain.get("default_cam_layer"),
        fold_batchnorm=fold,
        mode=mode,
        forward_engine=engine,
        description=str(raw.get("description", "")),
        batching=_batching(raw.get("batching", {})),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def _explain_mode(explain: dict[str, Any]) -> tuple[ExplainMode, bool, str]:
    """(mode, fold_batchnorm, forward_engine) of the `[explain]` table; exact mode rules out folding and
    any engine but eager torch, and says so rather than ignoring a contradicting key."""
    try:
        mode = ExplainMode(explain.get("mode", "fast"))
    except ValueError as exc:
        raise ConfigError(f"explain.mode must be 'fast' or 'exact', got {explain.get('mode')!r}") from exc
    fold = None
    if "fold_batchnorm" in explain:
        fold = _require(explain, "fold_batchnorm", bool, section="explain")
    engine = explain.get("forward_engine", "auto")
    if engine not in FORWARD_ENGINES:
        raise ConfigError(f"explain.forward_engine must be one of {list(FORWARD_ENGINES)}, got {engine!r}")
    if mode is ExplainMode.EXACT:
        if fold:
            raise ConfigError("explain.fold_batchnorm = true contradicts explain.mode = 'exact' (no folding)")
        if engine not in ("auto", "torch"):
            raise ConfigError(
                f"explain.forward_engine = {engine!r} contradicts explain.mode = 'exact' (eager torch only)"
            )
        return mode, False, "torch"
    return mode, True if fold is None else fold, engine


def _batching(table: Any) -> BatchingConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"batching must be a table, got {table!r}")
    unknown = set(table) - {"max_rows", "max_queue_delay_ms"}
    if unknown:
        raise ConfigError(f"batching has unknown keys {sorted(unknown)}; known: max_rows, max_queue_delay_ms")
    max_rows = table.get("max_rows")
    if max_rows is not None and (not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1):
        raise ConfigError(f"batching.max_rows must be a positive integer, got {max_rows!r}")
    delay = table.get("max_queue_delay_ms")
    if delay is not None and (
        not isinstance(delay, int | float) or isinstance(delay, bool) or not 0 <= delay <= 1000
    ):
        raise ConfigError(f"batching.max_queue_delay_ms must be a number in 0..1000, got {delay!r}")
    return BatchingConfig(max_rows, None if delay is None else float(delay))


def _require(table: dict[str, Any], key: str, kind: type, *, section: str = "") -> Any:
    name = f"{section}.{key}" if section else key
    if key not in table:
        raise ConfigError(f"{name} is required")
    if not isinstance(table[key], kind):
        raise ConfigError(f"{name} must be a {kind.__name__}, got {table[key]!r}")
    return table[key]


def _labels(raw: dict[str, Any], folder: Path) -> tuple[str, ...]:
    if "labels" in raw:
        labels = raw["labels"]
    elif "labels_file" in raw:
        path = (folder / raw["labels_file"]).resolve()
        if folder.resolve() not in path.parents:
            raise ConfigError("labels_file points outside the version folder")
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        raise ConfigError("labels or labels_file is required")
    if not labels or not all(isinstance(label, str) for label in labels):
        raise ConfigError("labels must be a non-empty list of strings")
    if len(set(labels)) != len(labels):
        raise ConfigError("labels must be unique")
    return tuple(labels)


def _triple(
    table: dict[str, Any], key: str, default: tuple[float, float, float]
) -> tuple[float, float, float]:
    value = table.get(key, default)
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ConfigError(f"input.{key} must be a list of 3 numbers, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))
