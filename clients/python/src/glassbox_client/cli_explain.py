"""`glassbox-client explain`: attribution maps of images (files, folders, globs), one output per input.

    glassbox-client explain docs/images/star.png --model shapes -o overlay.png --json result.json
    glassbox-client explain docs/images/samples --model shapes -o overlays/ --json summaries/

Pictures are at each image's own size unless --no-original-size asks for the model's input size.
"""

from __future__ import annotations

import argparse
import glob
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from glassbox_client.cli_common import chosen_model, parse_param, parse_target, write_json
from glassbox_client.client import GlassboxClient
from glassbox_client.errors import GlassboxError
from glassbox_client.types import Attribution, AttributionResult, ClassScore

T = TypeVar("T")


def _explain(client: GlassboxClient, args: argparse.Namespace) -> int:
    inputs = expand_images(args.images)
    destinations = output_files(inputs, args)
    outputs = ["map"] + ["overlay"] * bool(args.output) + ["heatmap"] * bool(args.heatmap)
    model = chosen_model(client, args.model)
    summaries, failures = [], 0
    for image, files in _with_progress(list(zip(inputs, destinations, strict=True)), args):
        try:
            result = client.attribute(
                image,
                model=model,
                method=args.method,
                targets=args.target,
                outputs=outputs,
                original_size=args.original_size,
                **dict(args.param),
            )
        except GlassboxError as exc:
            if len(inputs) == 1:
                raise
            print(f"error: {image}: {exc}", file=sys.stderr)
            failures += 1
            continue
        summaries.append(_write_explanation(result, image, files, args))
    if args.json == "-":
        write_json(summaries[0] if len(inputs) == 1 and summaries else summaries, "-")
    return 1 if failures else 0


def _write_explanation(
    result: AttributionResult, image: Path, files: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    attribution = result.images[0].attributions[0]
    if "output" in files:
        _requested(attribution.overlay, "overlay", image).save(files["output"])
    if "heatmap" in files:
        _requested(attribution.heatmap, "heatmap", image).save(files["heatmap"])
    if "map" in files:
        np.save(files["map"], _requested(attribution.map, "map", image))
    summary = {"image": str(image), **_summary(result, attribution)}
    if "json" in files:
        write_json(summary, files["json"])
    if args.json != "-":
        target = attribution.target
        what = f"{target.label} ({target.probability:.1%})" if target else "the requested neuron"
        written = ", ".join(files.values()) or "nothing written"
        print(f"{image}: {result.method} on {result.model}/{result.version} for {what}: {written}")
    return summary


def _requested(output: T | None, name: str, image: Path) -> T:
    """An output `_explain` asked for: the server sends every output requested."""
    if output is None:
        raise ValueError(f"{image}: the server sent no {name}")
    return output


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
OUTPUT_SUFFIXES = {"output": ".png", "heatmap": "-heatmap.png", "map": ".npy", "json": ".json"}


def expand_images(arguments: Sequence[str]) -> list[Path]:
    """Files as given; a folder's images (by suffix, sorted); a quoted glob's matches (sorted)."""
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise ValueError(f"{argument}: no image files (.png, .jpg, .webp, ...) in this folder")
            found.extend(images)
        elif glob.has_magic(argument) and not path.exists():
            matches = sorted(Path(m) for m in glob.glob(argument, recursive=True))
            if not matches:
                raise ValueError(f"{argument}: no file matches this pattern")
            found.extend(m for m in matches if m.is_file())
        else:
            found.append(path)
    return found


def output_files(inputs: Sequence[Path], args: argparse.Namespace) -> list[dict[str, str]]:
    """Each input's output files. One input: the names as given. Several: a name holding `{stem}` (or
    `{name}`, `{index}`) is a pattern; any other name is a folder, created, that gets `<stem>.png`,
    `<stem>-heatmap.png`, `<stem>.npy`, `<stem>.json`."""
    chosen = {
        option: getattr(args, option)
        for option in OUTPUT_SUFFIXES
        if getattr(args, option) and getattr(args, option) != "-"
    }
    if len(inputs) == 1:
        return [chosen]
    stems = [image.stem for image in inputs]
    clashes = sorted({stem for stem in stems if stems.count(stem) > 1})
    if clashes and any("{stem}" in value or "{" not in value for value in chosen.values()):
        raise ValueError(f"several inputs are named {', '.join(clashes)}: use {{index}} in the output names")
    files: list[dict[str, str]] = [{} for _ in inputs]
    for option, value in chosen.items():
        if "{" not in value:
            Path(value).mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(inputs):
            if "{" in value:
                name = value.format(stem=image.stem, name=image.name, index=index)
            else:
                name = str(Path(value) / f"{image.stem}{OUTPUT_SUFFIXES[option]}")
            files[index][option] = name
    return files


def _with_progress(items: list[Any], args: argparse.Namespace) -> Iterable[Any]:
    """The items, under a progress bar when there are several and stderr is a terminal."""
    if len(items) < 2 or args.quiet or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc="explain", unit="image")


def _summary(result: AttributionResult, attribution: Attribution) -> dict[str, Any]:
    target: ClassScore | None = attribution.target
    values = attribution.map
    return {
        "model": result.model,
        "version": result.version,
        "method": result.method,
        "target": asdict(target) if target else None,
        "map_shape": list(values.shape) if values is not None else None,
        "map_min": float(values.min()) if values is not None else None,
        "map_max": float(values.max()) if values is not None else None,
        "convergence_delta": attribution.convergence_delta,
        "original_size": list(result.images[0].original_size),
        "stats": asdict(result.stats),
    }


def add_explain_command(commands: Any) -> None:
    """Register `explain` under the CLI's subcommands."""
    explain = commands.add_parser(
        "explain",
        help="attribution maps of images, as PNG, .npy and JSON",
        description="Explain each image (files, folders of images or quoted globs), one output per input. "
        "With several inputs, each output option is a folder (created) or a pattern with {stem}, "
        "{name} or {index}: -o overlays/ or -o 'out/{stem}-cam.png'.",
    )
    explain.add_argument("images", nargs="+", help="image files, folders of images, or quoted globs")
    explain.add_argument("--model", help="default: the server's only ready model")
    explain.add_argument("--method", default="grad_cam", help="a supported method (see `model NAME`)")
    explain.add_argument(
        "--target", type=parse_target, help="class index or label (default: the predicted class)"
    )
    explain.add_argument("-o", "--output", help="write the overlay PNG here")
    explain.add_argument("--heatmap", help="write the heatmap PNG here")
    explain.add_argument("--map", help="write the raw map as a .npy file here")
    explain.add_argument("--json", help="write a JSON summary here (- for stdout)")
    explain.add_argument(
        "--original-size",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="maps and pictures at each image's own size (default); --no-original-size: the model's",
    )
    explain.add_argument(
        "--param", type=parse_param, action="append", default=[], help="method parameter key=value"
    )
    explain.add_argument("--quiet", action="store_true", help="no progress bar (default: one on a terminal)")
    explain.set_defaults(run=_explain)
