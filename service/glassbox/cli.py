"""`glassbox`: serve the model repository, classify images from the command line, train the demo models."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from glassbox.config import load_settings


def _serve(args: argparse.Namespace) -> int:
    from glassbox.server.app import GlassboxServer

    settings = load_settings(
        args.config,
        address=args.address,
        model_repository=args.model_repository,
        worker_threads=args.worker_threads,
        device=args.device,
        log_level=args.log_level,
        limits={k: v for k, v in {"max_message_bytes": args.max_message_bytes,
                                  "max_image_pixels": args.max_image_pixels}.items() if v is not None} or None,
    )
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    GlassboxServer(settings).serve_forever()
    return 0


def _predict(args: argparse.Namespace) -> int:
    import grpc
    from glassbox_client._generated.glassbox.v1 import model_service_pb2 as pb
    from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc, tensor_pb2

    images = [tensor_pb2.Image(encoded=Path(path).read_bytes()) for path in args.images]
    with grpc.insecure_channel(args.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        try:
            response = stub.Predict(
                pb.PredictRequest(model=args.model, version=args.version, images=images, top_k=args.top_k),
                timeout=args.timeout,
            )
        except grpc.RpcError as exc:
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    print(f"model {response.model} version {response.version}")
    for path, prediction in zip(args.images, response.predictions, strict=True):
        print(path)
        for score in prediction.classes:
            print(f"  {score.label:<16} {score.probability:7.2%}  (class {score.index}, logit {score.logit:.3f})")
    return 0


def _demo_train(args: argparse.Namespace) -> int:
    from glassbox.demo.train import train_demo_models

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train_demo_models(args.repository, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glassbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the model repository over gRPC")
    serve.add_argument("--config", type=Path, help="TOML settings file (GLASSBOX_* variables and flags override it)")
    serve.add_argument("--address", help="host:port to listen on (default 127.0.0.1:50051)")
    serve.add_argument("--model-repository", type=Path, help="model repository root (default ./models)")
    serve.add_argument("--worker-threads", type=int, help="gRPC handler threads")
    serve.add_argument("--device", choices=["auto", "cpu", "cuda"])
    serve.add_argument("--max-message-bytes", type=int)
    serve.add_argument("--max-image-pixels", type=int)
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.set_defaults(run=_serve)

    predict = commands.add_parser("predict", help="print the top classes of images")
    predict.add_argument("images", nargs="+", help="image files (PNG, JPEG, WebP, ...)")
    predict.add_argument("--model", required=True)
    predict.add_argument("--version", default="", help="default: the newest")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--address", default="127.0.0.1:50051")
    predict.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds")
    predict.set_defaults(run=_predict)

    demo = commands.add_parser("demo", help="demo models").add_subparsers(dest="demo_command", required=True)
    train = demo.add_parser("train", help="train the demo models into the repository")
    train.add_argument("--repository", type=Path, default=Path("models"))
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(run=_demo_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
