"""`glassbox prior train`: the image_prior_training job run in this process, without a server.

The spec is checked and run by the job kind's own `validate` and `run` (the same checks, the same
determinism from the seed, the same files beside the model version as a job's), with the progress
printed to stderr every `--log-every` steps and the result printed as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from glassbox_client._generated.glassbox.v1 import generative_pb2 as pb
from google.protobuf.json_format import MessageToDict

from glassbox.config import load_settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import GlassboxError
from glassbox.demo.datasets import register_generators
from glassbox.devices import resolve_device
from glassbox.generative.kinds import run_image_prior_training, validate_image_prior_training
from glassbox.jobs.kinds import JobContext, Progress
from glassbox.models.repository import ModelRepository


def spec_from_arguments(args: argparse.Namespace) -> pb.ImagePriorTrainingSpec:
    optional = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "latent_size": args.latent_size,
        "learning_rate": args.learning_rate,
        "kl_weight": args.kl_weight,
    }
    return pb.ImagePriorTrainingSpec(
        model=args.model,
        version=args.version,
        seed=args.seed,
        image_set=args.image_set,
        **{name: value for name, value in optional.items() if value is not None},
    )


def train(args: argparse.Namespace) -> int:
    from pathlib import Path

    settings = load_settings(Path(args.config) if args.config else None, model_repository=args.repository)
    device = resolve_device(args.device)
    register_generators()
    repository = ModelRepository(settings.model_repository, device=device)
    repository.load_all()
    start = time.monotonic()

    def publish(progress: Progress, _preview: bytes | None) -> None:
        if progress.step % max(args.log_every, 1) == 0 or progress.step == progress.total:
            loss = "" if math.isnan(progress.objective) else f" loss {progress.objective:.2f}"
            elapsed = time.monotonic() - start
            print(f"step {progress.step}/{progress.total}{loss} ({elapsed:.0f} s)", file=sys.stderr)

    try:
        job = validate_image_prior_training(spec_from_arguments(args), repository, settings)
        context = JobContext(
            job_id="cli",
            repository=repository,
            settings=settings,
            device=device,
            token=CancellationToken(),
            seed=args.seed,
            attempt=1,
            publish=publish,
        )
        result = run_image_prior_training(job, context)
    except GlassboxError as exc:
        print(f"glassbox prior train: {exc}", file=sys.stderr)
        return 2
    summary = MessageToDict(result, preserving_proto_field_name=True)
    summary.pop("reconstructions", None)
    print(json.dumps(summary, indent=2))
    return 0
