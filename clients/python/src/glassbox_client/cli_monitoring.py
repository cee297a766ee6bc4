"""`glassbox-client monitoring ...`: explanation monitoring from the shell.

glassbox-client monitoring history shapes --json -
glassbox-client monitoring changes shapes --method saliency --version 2 -o changes.png --json -
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from glassbox_client.cli_common import write_json
from glassbox_client.client import GlassboxClient


def _history(client: GlassboxClient, args: argparse.Namespace) -> int:
    records = list(client.monitoring.explanation_records(args.model, version=args.version))
    if args.json:
        write_json([asdict(r) for r in records], args.json)
        return 0
    for record in records:
        for check in record.methods:
            similarity = ", ".join(f"v{s.baseline_version} {s.spearman:.2f}" for s in check.similarity)
            pointing = "-" if check.pointing_game is None else f"{check.pointing_game:.2f}"
            print(
                f"{record.model} v{record.version} {record.trigger:<11} {check.method:<22} "
                f"{check.verdict:<5} "
                f"pointing {pointing}  "
                f"similarity [{similarity}]"
            )
            for reason in check.reasons:
                print(f"    {reason}")
    return 0


def _changes(client: GlassboxClient, args: argparse.Namespace) -> int:
    report = client.monitoring.explanation_changes(
        args.model,
        args.method,
        version=args.version,
        baseline_version=args.baseline_version,
        reference_set=args.reference_set,
        images=args.images,
        top=args.top,
    )
    if args.output:
        Path(args.output).write_bytes(report.report_png)
    summary = asdict(report)
    summary.pop("report_png")
    for change in summary["changes"]:
        change.pop("overlays_png")
    if args.json:
        write_json(summary, args.json)
    else:
        print(
            f"{report.model} {report.method}: v{report.baseline_version} -> v{report.version} on "
            f"{report.images} images of {report.reference_set}: Spearman {report.spearman:.3f}, "
            f"SSIM {report.ssim:.3f}, top-k overlap {report.top_k_overlap:.3f}, "
            f"prediction agreement {report.prediction_agreement:.3f}"
        )
        for change in report.changes:
            print(f"  #{change.index} {change.name}: Spearman {change.spearman:.3f}, SSIM {change.ssim:.3f}")
    return 0


def add_monitoring_commands(commands: Any) -> None:
    """The `monitoring` command group."""
    monitoring = commands.add_parser("monitoring", help="explanation monitoring: history and change reports")
    actions = monitoring.add_subparsers(dest="action", required=True)
    history = actions.add_parser("history", help="the recorded explanation checks, newest first")
    history.add_argument("model")
    history.add_argument("--version", default="", help="only this version")
    history.add_argument("--json", help="write the records as JSON here (- for stdout)")
    history.set_defaults(run=_history)
    changes = actions.add_parser("changes", help="the images whose maps changed most between two versions")
    changes.add_argument("model")
    changes.add_argument("--method", required=True, help="an attribution method, e.g. saliency")
    changes.add_argument("--version", default="", help="the newer version (default: the newest)")
    changes.add_argument("--baseline-version", default="", help="the older one (default: the one before)")
    changes.add_argument("--reference-set", default="", help="default: the version's [monitoring] set")
    changes.add_argument("--images", type=int, default=0, help="the first N images of the set")
    changes.add_argument("--top", type=int, default=0, help="images shown (default 6)")
    changes.add_argument("-o", "--output", help="write the report PNG here")
    changes.add_argument("--json", help="write the typed result as JSON here (- for stdout)")
    changes.set_defaults(run=_changes)
