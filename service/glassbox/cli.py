"""`glassbox`: serve the model repository, classify images from the command line, train the demo models
and learned image priors."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from glassbox_client.cli_common import add_predict_arguments

from glassbox.config import Settings, load_settings


def _serve(args: argparse.Namespace) -> int:
    from glassbox.server.app import GlassboxServer

    settings = serve_settings(args)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    GlassboxServer(settings).serve_forever()
    return 0


def serve_settings(args: argparse.Namespace) -> Settings:
    """`glassbox serve`'s settings: defaults < --config TOML < GLASSBOX_* environment < flags."""
    return load_settings(
        args.config,
        address=args.address,
        model_repository=args.model_repository,
        model_repository_poll_seconds=args.model_repository_poll_seconds,
        worker_threads=args.worker_threads,
        device=args.device,
        log_level=args.log_level,
        limits={
            k: v
            for k, v in {
                "max_message_bytes": args.max_message_bytes,
                "max_image_pixels": args.max_image_pixels,
            }.items()
            if v is not None
        }
        or None,
        security=_security_flags(args) or None,
        redis_url=args.redis_url,
        jobs={"redis_url": args.jobs_redis_url} if args.jobs_redis_url else None,
        metrics={"port": args.metrics_port} if args.metrics_port is not None else None,
        http=_http_flags(args) or None,
    )


def _http_flags(args: argparse.Namespace) -> dict[str, object]:
    flags = {"enabled": True if args.http or args.http_address else None, "address": args.http_address}
    return {k: v for k, v in flags.items() if v is not None}


def _security_flags(args: argparse.Namespace) -> dict[str, object]:
    flags = {
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "tls_client_ca": args.tls_client_ca,
        "require_client_cert": args.require_client_cert or None,
        "token_file": args.token_file,
    }
    return {k: v for k, v in flags.items() if v is not None}


def _worker(args: argparse.Namespace) -> int:
    from glassbox.demo.datasets import register_generators
    from glassbox.jobs.worker import run_worker
    from glassbox.metrics import Metrics
    from glassbox.wire.kinds import job_kinds

    jobs = {"redis_url": args.redis_url, "namespace": args.namespace}
    settings = load_settings(
        args.config,
        model_repository=args.model_repository,
        device=args.device,
        log_level=args.log_level,
        jobs={k: v for k, v in jobs.items() if v is not None} or None,
        metrics={"port": args.metrics_port} if args.metrics_port is not None else None,
    )
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    metrics = Metrics(settings.metrics) if args.metrics_port is not None else None
    if metrics is not None:
        metrics.start()
    on_finished = metrics.observe_job if metrics is not None else None
    register_generators()
    try:
        finished = run_worker(settings, job_kinds(), burst=args.burst, on_finished=on_finished)
    finally:
        if metrics is not None:
            metrics.stop()
    return 0 if finished else 1


def _predict(args: argparse.Namespace) -> int:
    """Classify image files through the typed client: the same command, output and errors as
    `glassbox-client predict`."""
    from glassbox_client.cli import main as client_main

    argv = ["--timeout", str(args.timeout)] + (["--address", args.address] if args.address else [])
    argv += ["predict", *map(str, args.images), "--top-k", str(args.top_k), "--version", args.version]
    return client_main(argv + (["--model", args.model] if args.model else []))


def _demo_train(args: argparse.Namespace) -> int:
    from glassbox.demo.train import train_demo_models

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train_demo_models(args.repository, seed=args.seed)
    return 0


def _demo_samples(args: argparse.Namespace) -> int:
    from glassbox.demo.samples import write_samples

    for path in write_samples(args.out):
        print(path)
    return 0


def _prior_train(args: argparse.Namespace) -> int:
    from glassbox.prior_cli import train

    return train(args)


def _add_prior_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name (a folder of the repository)")
    parser.add_argument("--version", default="", help="version (default: the newest ready one)")
    parser.add_argument("--image-set", required=True, help="named image set beside the model to train on")
    parser.add_argument("--repository", default="models", help="model repository root (default ./models)")
    parser.add_argument("--config", help="TOML settings file (its job limits apply)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu", help="default cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="optimiser steps (default 1500)")
    parser.add_argument("--batch-size", type=int, help="images per step (default 32)")
    parser.add_argument("--latent-size", type=int, help="dimensions of the latent code (default 32)")
    parser.add_argument("--learning-rate", type=float, help="Adam learning rate (default 0.004)")
    parser.add_argument("--kl-weight", type=float, help="weight of the KL term (default 0.25)")
    parser.add_argument("--log-every", type=int, default=100, help="print progress every N steps")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glassbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the model repository over gRPC")
    serve.add_argument(
        "--config", type=Path, help="TOML settings file (GLASSBOX_* variables and flags override it)"
    )
    serve.add_argument("--address", help="host:port to listen on (default 127.0.0.1:50051)")
    serve.add_argument("--model-repository", type=Path, help="model repository root (default ./models)")
    serve.add_argument(
        "--model-repository-poll-seconds", type=float, help="load new version folders this often (0 = never)"
    )
    serve.add_argument("--worker-threads", type=int, help="threads for blocking I/O (decoding, cache)")
    serve.add_argument("--device", choices=["auto", "cpu", "cuda"])
    serve.add_argument("--max-message-bytes", type=int)
    serve.add_argument("--max-image-pixels", type=int)
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain (TLS)")
    serve.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    serve.add_argument("--tls-client-ca", type=Path, help="PEM CA bundle for client certs")
    serve.add_argument("--require-client-cert", action="store_true", help="refuse clients without a cert")
    serve.add_argument("--token-file", type=Path, help="bearer tokens, one per line")
    serve.add_argument("--redis-url", help="cache results on Redis: redis[s]://[user:pw@]host:port/db")
    serve.add_argument(
        "--jobs-redis-url", help="queue jobs on Redis for `glassbox worker` processes (jobs.redis_url)"
    )
    serve.add_argument("--metrics-port", type=int, help="port of /metrics (default 9464; 0 = any free port)")
    serve.add_argument(
        "--http", action="store_true", help="serve the HTTP/JSON gateway and web page (http.enabled)"
    )
    serve.add_argument(
        "--http-address", help="host:port of the HTTP gateway (default 127.0.0.1:8080); implies --http"
    )
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run queued jobs from Redis (see docs/jobs.md)")
    worker.add_argument("--config", type=Path, help="TOML settings file (GLASSBOX_* variables and flags win)")
    worker.add_argument("--redis-url", help="Redis of the job queue (jobs.redis_url); required")
    worker.add_argument("--namespace", help="the server's jobs.namespace (default glassbox)")
    worker.add_argument("--model-repository", type=Path, help="model repository root (default ./models)")
    worker.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto: CUDA when present")
    worker.add_argument("--metrics-port", type=int, help="serve /metrics on this port (0 = any); default off")
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    worker.set_defaults(run=_worker)

    predict = commands.add_parser("predict", help="print the top classes of images (as glassbox-client)")
    add_predict_arguments(predict)
    predict.add_argument("--address", help="host:port (default GLASSBOX_ADDRESS or 127.0.0.1:50051)")
    predict.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds")
    predict.set_defaults(run=_predict)

    demo = commands.add_parser("demo", help="demo models").add_subparsers(dest="demo_command", required=True)
    train = demo.add_parser("train", help="train the demo models into the repository")
    train.add_argument("--repository", type=Path, default=Path("models"))
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(run=_demo_train)
    samples = demo.add_parser("samples", help="write the example images (one shape per class)")
    samples.add_argument("--out", type=Path, default=Path("docs/images/samples"), help="folder to write")
    samples.set_defaults(run=_demo_samples)

    prior = commands.add_parser("prior", help="learned image priors (docs/jobs.md)").add_subparsers(
        dest="prior_command", required=True
    )
    prior_train = prior.add_parser(
        "train", help="train a model's latent image prior on one of its named sets (image_prior_training)"
    )
    _add_prior_train_arguments(prior_train)
    prior_train.set_defaults(run=_prior_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
