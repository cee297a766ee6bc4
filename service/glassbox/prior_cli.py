"""`glassbox prior train`: the image_prior_training job run in this process, without a server.

The spec is checked and run by the job kind's own `validate`, `run` and `result`
(`wire.kinds.generative`: the same checks, the same determinism from the seed, the same files beside
the model version as a job's), with the progress printed to stderr every `--log-every` steps and the
result printed as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from glassbox.config import load_settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import GlassboxError
from glassbox.demo.datasets import register_generators
from glassbox.devices import resolve_device
from glassbox.jobs.kinds import JobContext, Progress
from glassbox.models.repository import ModelRepository
from glassbox.wire.kinds.generative import (
    image_prior_training_result,
    image_prior_training_spec,
    image_prior_training_summary,
    run_image_prior_training,
    validate_image_prior_training,
)


def spec_from_arguments(args: argparse.Namespace) -> Any:
    """The image_prior_training job spec the arguments describe (its wire form, as a job gets it)."""
    optional = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "latent_size": args.latent_size,
        "learning_rate": args.learning_rate,
        "kl_weight": args.kl_weight,
    }
    return image_prior_training_spec(
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
        result = image_prior_training_result(job, run_image_prior_training(job, context))
    except GlassboxError as exc:
        print(f"glassbox prior train: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(image_prior_training_summary(result), indent=2))
    return 0
