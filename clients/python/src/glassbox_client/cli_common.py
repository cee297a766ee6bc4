"""Helpers the `glassbox-client` subcommands share (JSON output, the chosen model, `key=value` params),
and `predict`'s arguments, which `glassbox predict` shares too (this module imports neither grpc nor
the client, so the server's command line stays light)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glassbox_client.client import GlassboxClient


def write_json(data: Any, destination: str) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if destination == "-":
        sys.stdout.write(text)
    else:
        Path(destination).write_text(text, encoding="utf-8")


def chosen_model(client: GlassboxClient, requested: str | None) -> str:
    """--model, or the repository's only ready model."""
    if requested:
        return requested
    ready = [m.name for m in client.models() if any(v.state == "ready" for v in m.versions)]
    if len(ready) == 1:
        return ready[0]
    raise SystemExit(
        f"error: choose a model with --model; the server has: {', '.join(ready) or 'none ready'}"
    )


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value`, the value read as JSON when it parses (numbers, booleans, lists), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_target(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """`predict`'s arguments, shared by `glassbox predict` and `glassbox-client predict`."""
    parser.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, WebP, ...)")
    parser.add_argument("--model", help="default: the server's only ready model")
    parser.add_argument("--version", default="", help="default: the newest ready version")
    parser.add_argument("--top-k", type=int, default=3)
