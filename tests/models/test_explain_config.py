"""model.toml's `[explain]` mode and forward engine: defaults, and contradictions refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from glassbox.core.model_config import ConfigError, ExplainMode, parse_config


def config(explain: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "safetensors",
        "architecture": "resnet18",
        "weights": "model.safetensors",
        "labels": ["a", "b"],
        "input": {"height": 8, "width": 8},
        "explain": explain,
    }


def test_the_default_is_the_fast_mode_with_an_automatic_engine(tmp_path: Path) -> None:
    parsed = parse_config(config({}), tmp_path)
    assert (parsed.mode, parsed.fold_batchnorm, parsed.forward_engine) == (ExplainMode.FAST, True, "auto")


def test_exact_mode_neither_folds_nor_chooses_an_engine(tmp_path: Path) -> None:
    parsed = parse_config(config({"mode": "exact"}), tmp_path)
    assert (parsed.mode, parsed.fold_batchnorm, parsed.forward_engine) == (ExplainMode.EXACT, False, "torch")


@pytest.mark.parametrize(
    ("explain", "named"),
    [
        ({"mode": "precise"}, "explain.mode"),
        ({"forward_engine": "tensorrt"}, "explain.forward_engine"),
        ({"mode": "exact", "fold_batchnorm": True}, "explain.fold_batchnorm"),
        ({"mode": "exact", "forward_engine": "onnxruntime"}, "explain.forward_engine"),
    ],
)
def test_bad_or_contradicting_keys_are_refused_by_name(
    tmp_path: Path, explain: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_config(config(explain), tmp_path)
