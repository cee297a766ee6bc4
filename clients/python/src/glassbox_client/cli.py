"""`glassbox-client`: talk to a Glassbox server from the shell; PNG and JSON results.

    glassbox-client models
    glassbox-client predict docs/images/samples/*.png --model shapes --json
    glassbox-client explain docs/images/star.png --model shapes -o overlay.png --json result.json
    glassbox-client explain docs/images/samples --model shapes -o 'overlays/{stem}.png'
    glassbox-client jobs submit class_visualisation --model shapes --param target=star --wait -o star.png
    glassbox-client monitoring changes shapes --method saliency -o changes.png

The server address comes from --address or GLASSBOX_ADDRESS; the token from --token-file,
GLASSBOX_TOKEN_FILE or GLASSBOX_TOKEN (never from a flag, so it stays out of `ps` and shell history).
Exit status: 0 on success, 1 when the server refused the call, 2 for bad command-line arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from glassbox_client.cli_common import add_predict_arguments, chosen_model, parse_param, write_json
from glassbox_client.cli_explain import add_explain_command
from glassbox_client.cli_jobs import add_job_commands
from glassbox_client.cli_monitoring import add_monitoring_commands
from glassbox_client.client import GlassboxClient
from glassbox_client.errors import GlassboxError
from glassbox_client.types import Prediction


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


def _models(client: GlassboxClient, args: argparse.Namespace) -> int:
    models = client.models()
    if args.json:
        write_json([asdict(m) for m in models], "-")
        return 0
    if not models:
        print("the server's model repository holds no model (see the server's log)", file=sys.stderr)
    for model in models:
        states = ", ".join(
            f"{v.version} {v.state}" + (f" ({v.error})" if v.error else "") for v in model.versions
        )
        print(f"{model.name:<24} {states}")
    return 0


def _model(client: GlassboxClient, args: argparse.Namespace) -> int:
    info = client.model(args.name, args.version)
    if args.json:
        write_json(asdict(info), "-")
        return 0
    print(f"{info.name} version {info.version} ({info.backend}, {info.state}) {info.description}")
    height, width = info.input_size
    print(f"  input {height}x{width} {info.resize_policy}; labels: {', '.join(info.labels)}")
    print(f"  methods: {', '.join(info.supported_methods)}")
    print(f"  default CAM layer: {info.default_cam_layer or '-'}")
    return 0


def print_predictions(images: Sequence[object], predictions: Sequence[Prediction]) -> None:
    """The text form of predictions, shared by `glassbox predict` and `glassbox-client predict`."""
    if predictions:
        print(f"model {predictions[0].model} version {predictions[0].version}")
    for image, prediction in zip(images, predictions, strict=True):
        print(image)
        for score in prediction.classes:
            detail = f"(class {score.index}, logit {score.logit:.3f})"
            print(f"  {score.label:<16} {score.probability:7.2%}  {detail}")


def _predict(client: GlassboxClient, args: argparse.Namespace) -> int:
    model = chosen_model(client, args.model)
    predictions = client.predict(args.images, model=model, version=args.version, top_k=args.top_k)
    if args.json:
        write_json(
            [{"image": str(i), **asdict(p)} for i, p in zip(args.images, predictions, strict=True)], "-"
        )
        return 0
    print_predictions(args.images, predictions)
    return 0


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
    add_predict_arguments(predict)
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.set_defaults(run=_predict)

    add_explain_command(commands)

    add_job_commands(commands, parse_param)
    add_monitoring_commands(commands)

    health = commands.add_parser("health", help="print the health status; exit 0 only when SERVING")
    health.add_argument("service", nargs="?", default="", help='"" (server), a service, or model/<name>')
    health.set_defaults(run=_health)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _client(args) as client:
            return args.run(client, args)
    except BrokenPipeError:
        # The reader went away (`glassbox-client jobs list | head -1`): not an error. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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
