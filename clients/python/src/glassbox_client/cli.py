"""`glassbox-client`: talk to a Glassbox server from the shell; PNG and JSON results.

    glassbox-client models
    glassbox-client predict cat.png dog.jpg --model shapes --json
    glassbox-client explain cat.png --model shapes --method grad_cam -o overlay.png --json result.json
    glassbox-client jobs submit class_visualisation --model shapes --param target=star --wait -o star.png
    glassbox-client monitoring changes shapes --method saliency -o changes.png

The server address comes from --address or GLASSBOX_ADDRESS; the token from --token-file,
GLASSBOX_TOKEN_FILE or GLASSBOX_TOKEN (never from a flag, so it stays out of `ps` and shell history).
Exit status: 0 on success, 1 when the server refused the call, 2 for bad command-line arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from glassbox_client.cli_jobs import add_job_commands
from glassbox_client.cli_monitoring import add_monitoring_commands
from glassbox_client.client import GlassboxClient
from glassbox_client.errors import GlassboxError
from glassbox_client.types import Attribution, AttributionResult, ClassScore


def _client(args: argparse.Namespace) -> GlassboxClient:
    return GlassboxClient(
        args.address,
        tls=args.tls or None,
        ca_cert=args.ca_cert,
        client_cert=args.client_cert,
        client_key=args.client_key,
        server_name=args.server_name,
        token_file=args.token_file,
        timeout=args.timeout,
    )


def _write_json(data: Any, destination: str) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if destination == "-":
        sys.stdout.write(text)
    else:
        Path(destination).write_text(text, encoding="utf-8")


def _models(client: GlassboxClient, args: argparse.Namespace) -> int:
    models = client.models()
    if args.json:
        _write_json([asdict(m) for m in models], "-")
        return 0
    for model in models:
        states = ", ".join(
            f"{v.version} {v.state}" + (f" ({v.error})" if v.error else "") for v in model.versions
        )
        print(f"{model.name:<24} {states}")
    return 0


def _model(client: GlassboxClient, args: argparse.Namespace) -> int:
    info = client.model(args.name, args.version)
    if args.json:
        _write_json(asdict(info), "-")
        return 0
    print(f"{info.name} version {info.version} ({info.backend}, {info.state}) {info.description}")
    height, width = info.input_size
    print(f"  input {height}x{width} {info.resize_policy}; labels: {', '.join(info.labels)}")
    print(f"  methods: {', '.join(info.supported_methods)}")
    print(f"  default CAM layer: {info.default_cam_layer or '-'}")
    return 0


def _chosen_model(client: GlassboxClient, requested: str | None) -> str:
    """--model, or the repository's only ready model."""
    if requested:
        return requested
    ready = [m.name for m in client.models() if any(v.state == "ready" for v in m.versions)]
    if len(ready) == 1:
        return ready[0]
    raise SystemExit(
        f"error: choose a model with --model; the server has: {', '.join(ready) or 'none ready'}"
    )


def _predict(client: GlassboxClient, args: argparse.Namespace) -> int:
    predictions = client.predict(args.images, model=_chosen_model(client, args.model), top_k=args.top_k)
    if args.json:
        _write_json(
            [{"image": str(i), **asdict(p)} for i, p in zip(args.images, predictions, strict=True)], "-"
        )
        return 0
    for image, prediction in zip(args.images, predictions, strict=True):
        print(f"{image}  ({prediction.model} version {prediction.version})")
        for score in prediction.classes:
            print(
                f"  {score.label:<16} {score.probability:7.2%}  class {score.index}  logit {score.logit:.3f}"
            )
    return 0


def _param(text: str) -> tuple[str, Any]:
    """`key=value`, the value read as JSON when it parses (numbers, booleans, lists), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _target(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def _explain(client: GlassboxClient, args: argparse.Namespace) -> int:
    outputs = ["map"] + ["overlay"] * bool(args.output) + ["heatmap"] * bool(args.heatmap)
    result = client.attribute(
        args.image,
        model=_chosen_model(client, args.model),
        method=args.method,
        targets=args.target,
        outputs=outputs,
        original_size=args.original_size,
        **dict(args.param),
    )
    attribution = result.images[0].attributions[0]
    if args.output:
        attribution.overlay.save(args.output)
    if args.heatmap:
        attribution.heatmap.save(args.heatmap)
    if args.map:
        np.save(args.map, attribution.map)
    summary = _summary(result, attribution)
    if args.json:
        _write_json(summary, args.json)
    if args.json != "-":
        target = attribution.target
        what = f"{target.label} ({target.probability:.1%})" if target else "the requested neuron"
        written = (
            ", ".join(p for p in (args.output, args.heatmap, args.map, args.json) if p) or "nothing written"
        )
        print(f"{result.method} on {result.model}/{result.version} for {what}: {written}")
    return 0


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


def _health(client: GlassboxClient, args: argparse.Namespace) -> int:
    status = client.health(args.service)
    print(status)
    return 0 if status == "SERVING" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glassbox-client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", help="host:port (default GLASSBOX_ADDRESS or 127.0.0.1:50051)")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline of each call in seconds")
    parser.add_argument("--tls", action="store_true", help="use TLS (implied by --ca-cert, --client-cert)")
    parser.add_argument("--ca-cert", type=Path, help="PEM CA that signed the server certificate")
    parser.add_argument("--client-cert", type=Path, help="PEM client certificate (mutual TLS)")
    parser.add_argument("--client-key", type=Path, help="PEM key of --client-cert")
    parser.add_argument("--server-name", help="name to verify in the server certificate")
    parser.add_argument("--token-file", type=Path, help="file holding the bearer token")
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list the models and their versions")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(run=_models)

    model = commands.add_parser("model", help="describe one model version")
    model.add_argument("name")
    model.add_argument("--version", default="", help="default: the newest ready version")
    model.add_argument("--json", action="store_true", help="print JSON")
    model.set_defaults(run=_model)

    predict = commands.add_parser("predict", help="top classes of images")
    predict.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, WebP, ...)")
    predict.add_argument("--model", help="default: the server's only model")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.set_defaults(run=_predict)

    explain = commands.add_parser("explain", help="attribution map of one image, as PNG and JSON")
    explain.add_argument("image", type=Path)
    explain.add_argument("--model", help="default: the server's only model")
    explain.add_argument("--method", default="grad_cam", help="a supported method (see `model NAME`)")
    explain.add_argument("--target", type=_target, help="class index or label (default: the predicted class)")
    explain.add_argument("-o", "--output", help="write the overlay PNG here")
    explain.add_argument("--heatmap", help="write the heatmap PNG here")
    explain.add_argument("--map", help="write the raw map as a .npy file here")
    explain.add_argument("--json", help="write a JSON summary here (- for stdout)")
    explain.add_argument("--original-size", action="store_true", help="maps at the image's own size")
    explain.add_argument(
        "--param", type=_param, action="append", default=[], help="method parameter key=value"
    )
    explain.set_defaults(run=_explain)

    add_job_commands(commands, _param)
    add_monitoring_commands(commands, _write_json)

    health = commands.add_parser("health", help="print the health status; exit 0 only when SERVING")
    health.add_argument("service", nargs="?", default="", help='"" (server), a service, or model/<name>')
    health.set_defaults(run=_health)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _client(args) as client:
            return args.run(client, args)
    except GlassboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
