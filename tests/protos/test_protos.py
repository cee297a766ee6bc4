"""The protos as other languages use them: every file names its Go, Java and C# package; `buf lint`
is clean and `buf breaking` finds nothing against the last commit on main (scripts/check_protos_buf.py,
also in `make test`); and the Java code protoc generates compiles against the protobuf-java runtime.

Only Java is compiled: its toolchain is two Debian packages beside the JDK, and it checks what the
options can get wrong (the package, one class per message, outer class names that must not collide
with a message). A Go check (golang-go, protoc-gen-go and the genproto module of google.rpc.Status)
was not built.

Needs protoc, javac and /usr/share/java/protobuf.jar (scripts/ensure-java-protoc.sh, run by
`make install-test`) and buf (`npm ci` in clients/typescript); without them these tests fail rather
than skip, because CI must run them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
THIRD_PARTY = ROOT / "third_party" / "googleapis"
JAR = Path("/usr/share/java/protobuf.jar")
OPTIONS = {
    "go_package": r'"github\.com/glassbox/glassbox/gen/go/glassbox/v1;glassboxv1"',
    "java_package": r'"dev\.glassbox\.v1"',
    "java_multiple_files": "true",
    "java_outer_classname": r'"\w+Proto"',
    "csharp_namespace": r'"Glassbox\.V1"',
}


def proto_files() -> list[Path]:
    return sorted(PROTOS.rglob("*.proto"))


@pytest.mark.parametrize("path", proto_files(), ids=lambda p: p.name)
def test_every_proto_names_its_packages_in_other_languages(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for option, value in OPTIONS.items():
        assert re.search(rf"^option {option} = {value};$", text, re.MULTILINE), f"{path.name}: {option}"


def test_buf_lint_and_breaking_pass() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_protos_buf.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "buf lint: clean" in run.stdout


def test_generated_java_compiles(tmp_path: Path) -> None:
    protoc, javac = shutil.which("protoc"), shutil.which("javac")
    if protoc is None or javac is None or not JAR.exists():
        pytest.fail("protoc, javac or protobuf-java is missing: run scripts/ensure-java-protoc.sh")
    sources, classes = tmp_path / "src", tmp_path / "classes"
    sources.mkdir()
    classes.mkdir()
    files = [str(p.relative_to(PROTOS)) for p in proto_files()]
    generate = [protoc, f"-I{PROTOS}", f"-I{THIRD_PARTY}", f"--java_out={sources}", *files]
    vendored = sorted(str(p.relative_to(THIRD_PARTY)) for p in THIRD_PARTY.rglob("*.proto"))
    subprocess.run([*generate, *vendored], check=True, timeout=120)
    java = sorted(str(p) for p in sources.rglob("*.java"))
    compiled = subprocess.run(
        [javac, "-nowarn", "-encoding", "UTF-8", "-d", str(classes), "-cp", str(JAR), *java],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr[-4000:]
    package = classes / "dev" / "glassbox" / "v1"
    for name in ("Job", "SubmitJobRequest", "GetServerInfoResponse", "JobServiceProto"):
        assert (package / f"{name}.class").exists(), name
