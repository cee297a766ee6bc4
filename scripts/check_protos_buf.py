"""`buf lint` and `buf breaking` over protos/ (make test runs this; buf.yaml configures both).

    python scripts/check_protos_buf.py                  # lint, then breaking against the baseline
    python scripts/check_protos_buf.py --against REF    # breaking against another git ref

The breaking baseline is the last commit on main: `main`, else `origin/main` (a CI clone often has only
the remote branch); when HEAD is that commit (CI on main itself), its parent. Its protos are exported
with `git archive` into a temporary folder, so the check works in any clone that has the baseline
commit, shallow or not, whatever branch is checked out; a clone without it (a depth-1 clone of main)
fetches one more commit from `origin` if it can, and otherwise says so and skips only this step.

A baseline from before buf.yaml existed also lacked the language options (go_package, java_package,
java_multiple_files, java_outer_classname, csharp_namespace) that came with it; against such a
baseline, adding them is expected and is the one change not reported. buf comes from
clients/typescript/node_modules (`@bufbuild/buf`, pinned in its package.json; `npm ci` installs it).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUF = ROOT / "clients" / "typescript" / "node_modules" / ".bin" / "buf"
EXPORTED = ["buf.yaml", "protos", "third_party"]
OPTIONS_INTRODUCED = {
    "FILE_SAME_GO_PACKAGE",
    "FILE_SAME_JAVA_PACKAGE",
    "FILE_SAME_JAVA_MULTIPLE_FILES",
    "FILE_SAME_JAVA_OUTER_CLASSNAME",
    "FILE_SAME_CSHARP_NAMESPACE",
}


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def commit_of(ref: str) -> str | None:
    found = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return found.stdout.strip() if found.returncode == 0 else None


def baseline(requested: str | None) -> str | None:
    """The commit to compare against (see the module docstring); None when the clone lacks it."""
    if requested:
        return commit_of(requested)
    main = commit_of("main") or commit_of("origin/main")
    if main is None:
        git("fetch", "--quiet", "--depth=2", "origin", "main")
        main = commit_of("FETCH_HEAD")
    if main is not None and main == commit_of("HEAD"):
        parent = commit_of(f"{main}~1")
        if parent is None:
            git("fetch", "--quiet", "--deepen=1", "origin")
            parent = commit_of(f"{main}~1")
        return parent
    return main


def export(commit: str, into: Path) -> None:
    """The baseline's buf.yaml, protos/ and third_party/ (those it has) under `into`."""
    listed = git("ls-tree", "--name-only", commit, *EXPORTED).stdout.split()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, *listed], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def breaking(commit: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        against = Path(tmp)
        export(commit, against)
        has_workspace = (against / "buf.yaml").exists()
        command = [str(BUF), "breaking", "--error-format=json"]
        command += (
            ["--against", str(against)] if has_workspace else ["protos", "--against", str(against / "protos")]
        )
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if run.returncode not in (0, 100):  # 100: breaking changes found
        print(run.stdout + run.stderr, file=sys.stderr)
        return run.returncode
    problems = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    if not has_workspace:
        problems = [p for p in problems if p["type"] not in OPTIONS_INTRODUCED]
    for problem in problems:
        # A problem about a whole file that disappeared (FILE_NO_DELETE) has no path.
        where = f"{problem.get('path', '-')}:{problem.get('start_line', 0)}:{problem.get('start_column', 0)}"
        print(f"{where}: {problem['message']} ({problem['type']})", file=sys.stderr)
    if problems:
        print(f"buf breaking: {len(problems)} breaking change(s) against {commit[:12]}", file=sys.stderr)
        return 1
    print(f"buf breaking: no breaking change against {commit[:12]}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--against", help="a git ref to compare with (default: see above)")
    args = parser.parse_args()
    if not BUF.exists():
        raise SystemExit(f"{BUF.relative_to(ROOT)} is missing: run `npm ci` in clients/typescript")
    if subprocess.run([str(BUF), "lint"], cwd=ROOT, check=False).returncode != 0:
        print("buf lint failed", file=sys.stderr)
        return 1
    print("buf lint: clean")
    commit = baseline(args.against)
    if commit is None:
        print("buf breaking: skipped, this clone has no main branch to compare with (git fetch origin main)")
        return 0
    return breaking(commit)


if __name__ == "__main__":
    sys.exit(main())
