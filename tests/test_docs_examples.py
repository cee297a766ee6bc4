"""Every example in README.md and docs/*.md runs as written, against a real server on the shipped models.

The examples are read from the Markdown itself: Python blocks run as scripts, `console` blocks run their
`$` commands and compare the output's shape, `sh` blocks (curl against the HTTP gateway) run as shell
scripts, inline `glassbox-client ...` commands run too, and each document's TypeScript blocks are
compiled (strict) and run as one program. They run from a scratch folder that links the repository's
`docs/` (so the pictures they write land in that folder, not in the repository), with the test
server's addresses in place of 127.0.0.1:50051 (and in GLASSBOX_ADDRESS) and of the gateway's
127.0.0.1:8080. A block that is not a runnable example (set-up, deployment, configuration, diagrams)
must match one of SKIPPED, which says why, so a new example cannot go unrun by accident. Where a doc
says "Quick run: `A` → `B`" under an example, the test runs it with that substitution (a smaller
setting the doc shows, for the long jobs).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from glassbox.demo.samples import CLASSES, SAMPLE_SIZE, write_samples
from glassbox_client import GlassboxClient
from PIL import Image
from support.paths import ROOT
from support.servers import RunningServer

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_HTTP_ADDRESS = "127.0.0.1:8080"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
QUICK_RUN = re.compile(r"^Quick run: (.+)$", re.MULTILINE)
SUBSTITUTION = re.compile(r"`([^`]+)` → `([^`]+)`")
INLINE_COMMAND = re.compile(r"`(glassbox-client [^`]+)`")
DRIFT_DEMO_VERSION = (
    "needs version 2 of shapes, which the drift demo's one-liner adds; tests/monitoring runs these calls "
    "against such a repository"
)
SKIPPED: list[tuple[str, str, str]] = [
    # (language, a regular expression the block matches, why it does not run here)
    ("sh", r"make serve", "the set-up commands: `make test` is the test run itself"),
    ("sh", r"glassbox serve|glassbox worker", "starts servers and workers that run until stopped"),
    (
        "sh",
        r"glassbox prior train",
        "trains for minutes and replaces the shipped prior; tests/generative/test_image_prior.py runs the "
        "command on a copy of the repository",
    ),
    (
        "bash",
        r"docker|kubectl",
        "needs a container engine or a cluster (docs/deployment.md: checked statically)",
    ),
    ("bash", r"pip install", "installs packages (the test environment has them)"),
    (
        "bash",
        r"npm ci",
        "installs packages (tests/clients/test_typescript_client.py builds and runs the client)",
    ),
    ("toml", r"", "a configuration fragment, not a command"),
    ("promql", r"", "a query; tests/deploy checks the alert rules"),
    ("", r"", "a diagram, a synopsis or a key layout"),
    (
        "sh",
        r"models/shapes/\.2",
        "changes the served model repository (the drift demo); tests/deploy/test_explanation_alerts.py "
        "runs this one-liner on a copy",
    ),
    *(
        (language, r'--version 2|version="2"', DRIFT_DEMO_VERSION)
        for language in ("python", "console", "inline")
    ),
]


@dataclass(frozen=True)
class Example:
    document: str
    line: int
    language: str
    code: str
    substitutions: tuple[tuple[str, str], ...]

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"


def _examples() -> list[Example]:
    found = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            following = text[match.end() : match.end() + 600].split("```")[0]
            quick = QUICK_RUN.search(following)
            substitutions = tuple(SUBSTITUTION.findall(quick.group(1))) if quick else ()
            line = text.count("\n", 0, match.start()) + 1
            found.append(Example(path.name, line, match.group(1), match.group(2), substitutions))
        prose = FENCE.sub("", text)
        for command in INLINE_COMMAND.findall(prose):
            if "..." not in command and not re.search(r"\b[A-Z_]{3,}\b", command):
                found.append(Example(path.name, 0, "inline", command, ()))
    return found


def _skip_reason(example: Example) -> str | None:
    for language, pattern, reason in SKIPPED:
        if example.language == language and re.search(pattern, example.code):
            return reason
    return None


EXAMPLES = _examples()
RUNNABLE = [
    e for e in EXAMPLES if e.language in ("python", "console", "inline", "sh") and _skip_reason(e) is None
]
TYPESCRIPT = [e for e in EXAMPLES if e.language == "ts"]
"""Run together, per document, in order: the later blocks use the client the first one creates."""
PACKAGE = ROOT / "clients" / "typescript"


def test_every_block_is_run_or_skipped_for_a_stated_reason() -> None:
    run = RUNNABLE + TYPESCRIPT
    unclassified = [e.id for e in EXAMPLES if e not in run and _skip_reason(e) is None]
    assert not unclassified, f"examples neither run nor skipped with a reason: {unclassified}"
    assert len([e for e in RUNNABLE if e.language == "python"]) >= 8
    assert len([e for e in RUNNABLE if e.language == "inline"]) >= 2


def test_the_sample_images_show_each_class_and_the_demo_model_knows_them(server: RunningServer) -> None:
    """docs/images/samples holds one shape per class, at the size `glassbox demo samples` draws, and the
    shipped `shapes` model recognises each (the examples' printed labels depend on it)."""
    folder = ROOT / "docs" / "images" / "samples"
    files = sorted(folder.glob("*.png"))
    assert sorted(path.stem for path in files) == sorted(CLASSES)
    for path in files:
        with Image.open(path) as image:
            assert image.size == (SAMPLE_SIZE, SAMPLE_SIZE) and image.mode == "RGB"
    with GlassboxClient(server.address, timeout=60) as glassbox:
        predictions = glassbox.predict(files, model="shapes", top_k=1)
    assert [p.top.label for p in predictions] == [path.stem for path in files]


def test_demo_samples_writes_one_picture_per_class(tmp_path: Path) -> None:
    written = write_samples(tmp_path, size=32)
    assert sorted(path.stem for path in written) == sorted(CLASSES)
    with Image.open(written[0]) as image:
        assert image.size == (32, 32)


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """The shipped models, with the HTTP gateway on (the curl examples use it)."""
    return start_server(http={"enabled": True, "address": "127.0.0.1:0"})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder that looks like the repository root to the examples."""
    folder = tmp_path_factory.mktemp("examples")
    (folder / "docs").symlink_to(ROOT / "docs")
    (folder / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return folder


def _environment(server: RunningServer) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    paths = [str(ROOT / "service"), str(ROOT / "clients" / "python" / "src")]
    return {
        **os.environ,
        "GLASSBOX_ADDRESS": server.address,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]),
    }


def _prepared(example: Example, server: RunningServer) -> str:
    code = example.code.replace(DEFAULT_ADDRESS, server.address)
    code = code.replace(DEFAULT_HTTP_ADDRESS, f"127.0.0.1:{server.server.http_port}")
    for old, new in example.substitutions:
        assert old in code, f"{example.id}: the quick run replaces {old!r}, which the example lacks"
        code = code.replace(old, new)
    return code


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.id if e.line else e.code[:60] for e in RUNNABLE])
def test_the_example_runs_as_written(example: Example, server: RunningServer, workdir: Path) -> None:
    code = _prepared(example, server)
    env = _environment(server)
    if example.language == "python":
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{example.id}\n{done.stdout}\n{done.stderr}"
    elif example.language == "sh":
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{example.id}\n{done.stdout}\n{done.stderr}"
    elif example.language == "inline":
        done = subprocess.run(
            shlex.split(code), cwd=workdir, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{code}\n{done.stdout}\n{done.stderr}"
    else:
        _run_console(example, code, workdir, env)


def _run_console(example: Example, code: str, workdir: Path, env: dict[str, str]) -> None:
    """`$ command` lines, each followed by the output it prints: the same lines, labels and order; the
    numbers may differ in their last digits (a retrained model), so they are compared within 2%."""
    blocks = re.split(r"^\$ ", code, flags=re.MULTILINE)[1:]
    assert blocks, f"{example.id}: a console block without a $ command"
    for block in blocks:
        command, _, expected = block.partition("\n")
        done = subprocess.run(
            command, shell=True, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        got, want = done.stdout.strip().splitlines(), expected.strip().splitlines()
        assert len(got) == len(want), f"{command}\n{done.stdout}"
        for got_line, want_line in zip(got, want, strict=True):
            number = r"-?\d+(?:\.\d+)?"
            assert re.sub(number, "#", got_line) == re.sub(number, "#", want_line), (got_line, want_line)
            for g, w in zip(re.findall(number, got_line), re.findall(number, want_line), strict=True):
                assert float(g) == pytest.approx(float(w), rel=0.02, abs=0.02), (got_line, want_line)


def _node_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; the TypeScript examples need Node.js 20+ and npm")
    return path


@pytest.mark.parametrize("document", sorted({e.document for e in TYPESCRIPT}))
def test_the_typescript_examples_run_as_written(
    document: str, server: RunningServer, workdir: Path, tmp_path: Path
) -> None:
    """The document's ts blocks in order, as one program: imports hoisted, the rest inside an async
    main (the blocks use top-level await), compiled with the package's own tsc (strict) against the
    built package, then run from the scratch folder."""
    node, npm = _node_tool("node"), _node_tool("npm")
    if not (PACKAGE / "node_modules" / ".bin" / "tsc").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PACKAGE, check=True, timeout=600)
    subprocess.run([npm, "run", "build"], cwd=PACKAGE, check=True, capture_output=True, timeout=300)
    code = "\n".join(_prepared(e, server) for e in TYPESCRIPT if e.document == document)
    imports = [line for line in code.splitlines() if line.startswith("import ")]
    body = [line for line in code.splitlines() if not line.startswith("import ")]
    program = "\n".join(
        [
            *imports,
            "",
            "async function main(): Promise<void> {",
            *body,
            "  glassbox.close();",
            "}",
            "",
            "main().catch((error) => {",
            "  console.error(error);",
            "  process.exit(1);",
            "});",
            "",
        ]
    )
    modules = tmp_path / "node_modules" / "@glassbox"
    modules.mkdir(parents=True)
    (modules / "client").symlink_to(PACKAGE)
    (tmp_path / "example.ts").write_text(program, encoding="utf-8")
    compiled = subprocess.run(
        [
            str(PACKAGE / "node_modules" / ".bin" / "tsc"),
            "--strict",
            "--target",
            "ES2022",
            "--module",
            "commonjs",
            "--esModuleInterop",
            "--skipLibCheck",
            "--types",
            "node",
            "--typeRoots",
            str(PACKAGE / "node_modules" / "@types"),
            "--outDir",
            str(tmp_path / "out"),
            "example.ts",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compiled.returncode == 0, f"{document}\n{program}\n{compiled.stdout}{compiled.stderr}"
    done = subprocess.run(
        [node, str(tmp_path / "out" / "example.js")],
        cwd=workdir,
        env=_environment(server),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{document}\n{done.stdout}\n{done.stderr}"
