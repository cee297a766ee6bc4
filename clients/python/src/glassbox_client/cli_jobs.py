"""`glassbox-client jobs ...`: submit, watch (progress bar; Ctrl-C cancels), get, cancel and list jobs.

glassbox-client jobs submit class_visualisation --model shapes --param target=star --wait -o star.png
glassbox-client jobs get JOB_ID --json report.json -o report.png
glassbox-client jobs list --state running

Every kind's result is written by the same rules (`job_export`): `-o` writes each of its pictures (the
main one to the name given, the others beside it named by field), `--json` the whole job with the
result's fields, tensors as lists and pictures as the files written.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from glassbox_client._generated.glassbox.v1 import job_service_pb2 as job_pb
from glassbox_client.client import GlassboxClient
from glassbox_client.descriptors import descriptor_of, enum_type_of, message_type_of
from glassbox_client.job_export import result_json, write_pictures
from glassbox_client.jobs import KINDS, Job

LIST_HEADER = f"{'ID':<32}  {'STATE':<10} {'KIND':<22} {'MODEL':<16} {'PROGRESS':>11}  CREATED"


def _summary(job: Job, written: dict[str, str]) -> dict[str, Any]:
    """A job as JSON: its record and its whole result (pictures as the files written)."""
    return {
        "id": job.id,
        "kind": job.kind,
        "model": job.model,
        "seed": job.seed,
        "state": job.state,
        "step": job.progress.step,
        "total": job.progress.total,
        "objective": job.progress.objective,
        "message": job.progress.message,
        "attempt": job.attempt,
        "error": {"code": job.error[0], "message": job.error[1]} if job.error else None,
        "created": job.create_time.isoformat() if job.create_time else None,
        "started": job.start_time.isoformat() if job.start_time else None,
        "finished": job.finish_time.isoformat() if job.finish_time else None,
        "result": result_json(job.result.message, written) if job.result and job.result.message else None,
    }


def _result_lines(job: Job) -> list[str]:
    """A short text summary of a result: its scalar fields, list sizes, verdicts and warnings."""
    if job.result is None or job.result.message is None:
        return []
    data = result_json(job.result.message)
    scalars: list[str] = []
    counts: list[str] = []
    notes: list[str] = []
    for name, value in data.items():
        if isinstance(value, bool | int | float) or (isinstance(value, str) and not value.startswith("<")):
            scalars.append(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}")
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            notes.extend(f"  {name[:-1] if name.endswith('s') else name}: {v}" for v in value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            counts.append(f"{len(value)} {name}")
            notes.extend(f"  {item['verdict']}" for item in value if item.get("verdict"))
    summary = ", ".join(scalars + counts)
    return ([f"  result: {summary}"] if summary else []) + notes


def _describe(job: Job, written: list[str]) -> None:
    """Print the job: state and progress, times, error, a result summary and the files written."""
    print(f"job {job.id} {job.kind} on {job.model}: {job.state}")
    progress = job.progress
    if progress.total or progress.step:
        objective = f", objective {progress.objective:.4g}" if progress.objective is not None else ""
        message = f" ({progress.message})" if progress.message else ""
        print(f"  progress {progress.step}/{progress.total or '?'}{objective}{message}")
    times = [
        f"{name} {stamp:%Y-%m-%d %H:%M:%S}"
        for name, stamp in (("created", job.create_time), ("started", job.start_time))
        if stamp
    ]
    if job.finish_time:
        times.append(f"finished {job.finish_time:%Y-%m-%d %H:%M:%S}")
    if times:
        print(f"  {', '.join(times)}")
    if job.error:
        print(f"  error: {job.error[0]} {job.error[1]}")
    for line in _result_lines(job):
        print(line)
    if written:
        print(f"  wrote {', '.join(written)}")


def _finish(job: Job, args: argparse.Namespace) -> int:
    """Write the result's pictures and the JSON the flags ask for; exit 1 unless the job SUCCEEDED."""
    message = job.result.message if job.result else None
    pictures = write_pictures(message, Path(args.output)) if args.output and message is not None else {}
    written = list(pictures.values())
    if args.json:
        text = json.dumps(_summary(job, pictures), indent=2, allow_nan=False) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
            written.append(args.json)
    if args.json != "-":
        _describe(job, written)
    if args.output and job.state == "succeeded" and not pictures:
        print(f"  {job.kind} results have no pictures; nothing written to {args.output}", file=sys.stderr)
    return 0 if job.state == "succeeded" else 1


def _progress(args: argparse.Namespace) -> bool | None:
    """No bar with --quiet; otherwise a bar when stderr is a terminal."""
    return False if args.quiet else None


def _submit(client: GlassboxClient, args: argparse.Namespace) -> int:
    job = client.jobs.submit(args.kind, model=args.model, **dict(args.param))
    if not args.wait:
        print(job.id)
        return 0
    return _finish(client.jobs.wait(job.id, timeout=args.wait_timeout, progress=_progress(args)), args)


def _watch(client: GlassboxClient, args: argparse.Namespace) -> int:
    return _finish(client.jobs.wait(args.job_id, timeout=args.wait_timeout, progress=_progress(args)), args)


def _get(client: GlassboxClient, args: argparse.Namespace) -> int:
    job = client.jobs.get(args.job_id)
    if job.finished:
        return _finish(job, args)
    if args.json:
        _finish(job, args)
    else:
        _describe(job, [])
    return 0


def _cancel(client: GlassboxClient, args: argparse.Namespace) -> int:
    job = client.jobs.cancel(args.job_id)
    print(f"job {job.id} {job.state}" + (" (cancel requested)" if job.cancel_requested else ""))
    return 0


def _list(client: GlassboxClient, args: argparse.Namespace) -> int:
    if not args.no_header:
        print(LIST_HEADER)
    for index, job in enumerate(client.jobs.list(states=args.state, kind=args.kind, model=args.model)):
        if index >= args.limit:
            break
        progress = f"{job.progress.step}/{job.progress.total}" if job.progress.total else "-"
        created = job.create_time.strftime("%Y-%m-%d %H:%M:%S") if job.create_time else ""
        print(f"{job.id:<32}  {job.state:<10} {job.kind:<22} {job.model:<16} {progress:>11}  {created}")
    return 0


def _outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        help="write the result's pictures: the main one here, the others beside it named by field",
    )
    parser.add_argument("--json", help="write the job and its whole result as JSON here (- for stdout)")
    parser.add_argument("--wait-timeout", type=float, default=3600.0, help="seconds to wait for the end")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (default: one on a terminal)")


def _field_type(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        kind = message_type_of(field).name
    elif field.type == FieldDescriptor.TYPE_ENUM:
        enum = enum_type_of(field)
        prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
        names = [v.name.removeprefix(prefix).lower() for v in enum.values if v.number]
        kind = "|".join(names)
    else:
        kind = {
            FieldDescriptor.TYPE_STRING: "string",
            FieldDescriptor.TYPE_BOOL: "bool",
            FieldDescriptor.TYPE_FLOAT: "float",
            FieldDescriptor.TYPE_DOUBLE: "float",
            FieldDescriptor.TYPE_BYTES: "bytes",
        }.get(field.type, "int")
    return f"[{kind}]" if field.is_repeated else kind


def kind_fields(spec: Descriptor) -> str:
    """`name=type` for each field of a job kind's spec (model excluded: it is --model)."""
    return " ".join(f"{f.name}={_field_type(f)}" for f in spec.fields if f.name != "model")


def _kinds_epilog() -> str:
    specs = descriptor_of(job_pb.SubmitJobRequest).oneofs_by_name["spec"].fields
    lines = ["fields of each kind (--param NAME=VALUE; messages and lists as JSON):"]
    for field in specs:
        spec = message_type_of(field)
        lines.append(f"  {field.name} ({spec.name}):")
        lines.extend(textwrap.wrap(kind_fields(spec), 100, initial_indent="    ", subsequent_indent="    "))
    lines.append("The field comments in protos/glassbox/v1/*.proto say what each one means.")
    return "\n".join(lines)


def add_job_commands(commands: Any, param: Callable[[str], tuple[str, Any]]) -> None:
    """Register `jobs submit|watch|get|cancel|list` under the CLI's subcommands."""
    jobs = commands.add_parser("jobs", help="long-running jobs (feature visualisation, DeepDream, ...)")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)

    submit = actions.add_parser(
        "submit",
        help="queue a job; with --wait, watch it to the end",
        epilog=_kinds_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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

    get = actions.add_parser(
        "get", help="print a job (state, progress, result summary); -o and --json write its result"
    )
    get.add_argument("job_id")
    _outputs(get)
    get.set_defaults(run=_get)

    cancel = actions.add_parser("cancel", help="cancel a job")
    cancel.add_argument("job_id")
    cancel.set_defaults(run=_cancel)

    listing = actions.add_parser("list", help="jobs, newest first, under a header line")
    listing.add_argument("--state", action="append", default=[], help="queued, running, succeeded, ...")
    listing.add_argument("--kind", default="")
    listing.add_argument("--model", default="")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--no-header", action="store_true", help="leave out the header line")
    listing.set_defaults(run=_list)
