"""`glassbox-client jobs ...`: submit, watch (progress bar; Ctrl-C cancels), get, cancel and list jobs.

glassbox-client jobs submit class_visualisation --model shapes --param target=star --wait -o star.png
glassbox-client jobs list --state running
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glassbox_client.client import GlassboxClient
from glassbox_client.jobs import KINDS, Job


def _summary(job: Job) -> dict[str, Any]:
    """A job as JSON: everything but the images (written as PNG files) and arrays."""
    return {
        "id": job.id,
        "kind": job.kind,
        "model": job.model,
        "seed": job.seed,
        "state": job.state,
        "step": job.progress.step,
        "total": job.progress.total,
        "objective": job.progress.objective,
        "attempt": job.attempt,
        "error": {"code": job.error[0], "message": job.error[1]} if job.error else None,
        "created": job.create_time.isoformat() if job.create_time else None,
        "finished": job.finish_time.isoformat() if job.finish_time else None,
        "result": job.result.values if job.result else None,
    }


def _finish(job: Job, args: argparse.Namespace) -> int:
    """Write the result image(s) and JSON the flags ask for; exit 1 unless the job SUCCEEDED."""
    written = []
    if args.output and job.result and job.result.images:
        target = Path(args.output)
        for index, image in enumerate(job.result.images):
            path = target if index == 0 else target.with_stem(f"{target.stem}-{index}")
            image.save(path)
            written.append(str(path))
    if args.json:
        text = json.dumps(_summary(job), indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    if args.json != "-":
        where = f"; wrote {', '.join(written)}" if written else ""
        error = f": {job.error[0]} {job.error[1]}" if job.error else ""
        print(f"job {job.id} {job.kind} {job.state}{error}{where}")
    return 0 if job.state == "succeeded" else 1


def _submit(client: GlassboxClient, args: argparse.Namespace) -> int:
    job = client.jobs.submit(args.kind, model=args.model, **dict(args.param))
    if not args.wait:
        print(job.id)
        return 0
    return _finish(client.jobs.wait(job.id, timeout=args.wait_timeout, progress=not args.quiet), args)


def _watch(client: GlassboxClient, args: argparse.Namespace) -> int:
    return _finish(client.jobs.wait(args.job_id, timeout=args.wait_timeout, progress=not args.quiet), args)


def _get(client: GlassboxClient, args: argparse.Namespace) -> int:
    job = client.jobs.get(args.job_id)
    if job.finished:
        return _finish(job, args)
    print(json.dumps(_summary(job), indent=2))
    return 0


def _cancel(client: GlassboxClient, args: argparse.Namespace) -> int:
    job = client.jobs.cancel(args.job_id)
    print(f"job {job.id} {job.state}" + (" (cancel requested)" if job.cancel_requested else ""))
    return 0


def _list(client: GlassboxClient, args: argparse.Namespace) -> int:
    for index, job in enumerate(client.jobs.list(states=args.state, kind=args.kind, model=args.model)):
        if index >= args.limit:
            break
        progress = f"{job.progress.step}/{job.progress.total}" if job.progress.total else "-"
        created = job.create_time.strftime("%Y-%m-%d %H:%M:%S") if job.create_time else ""
        print(f"{job.id}  {job.state:<10} {job.kind:<22} {job.model:<16} {progress:>11}  {created}")
    return 0


def _outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", help="write the result image here (a batch: NAME-1.png, ...)")
    parser.add_argument("--json", help="write the job as JSON here (- for stdout)")
    parser.add_argument("--wait-timeout", type=float, default=3600.0, help="seconds to wait for the end")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_job_commands(commands: Any, param: Callable[[str], tuple[str, Any]]) -> None:
    """Register `jobs submit|watch|get|cancel|list` under the CLI's subcommands."""
    jobs = commands.add_parser("jobs", help="long-running jobs (feature visualisation, DeepDream, ...)")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)

    submit = actions.add_parser("submit", help="queue a job; with --wait, watch it to the end")
    submit.add_argument("kind", choices=KINDS)
    submit.add_argument("--model", required=True)
    submit.add_argument(
        "--param", type=param, action="append", default=[], help="spec field key=value (JSON for messages)"
    )
    submit.add_argument(
        "--wait", action="store_true", help="watch with a progress bar; Ctrl-C cancels the job"
    )
    _outputs(submit)
    submit.set_defaults(run=_submit)

    watch = actions.add_parser("watch", help="watch a job to the end; Ctrl-C cancels it")
    watch.add_argument("job_id")
    _outputs(watch)
    watch.set_defaults(run=_watch)

    get = actions.add_parser("get", help="a job's state, or its result once finished")
    get.add_argument("job_id")
    _outputs(get)
    get.set_defaults(run=_get)

    cancel = actions.add_parser("cancel", help="cancel a job")
    cancel.add_argument("job_id")
    cancel.set_defaults(run=_cancel)

    listing = actions.add_parser("list", help="jobs, newest first")
    listing.add_argument("--state", action="append", default=[], help="queued, running, succeeded, ...")
    listing.add_argument("--kind", default="")
    listing.add_argument("--model", default="")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(run=_list)
