"""The service's import rules, read from the source (the AST of every module under service/glassbox,
imports inside functions included), so a forbidden import fails here without importing anything.

`RULES` is the table: each rule names the modules it applies to (a package covers everything under
it), the imports they must not make (likewise by prefix) and the modules exempt from it. Add a row to
add a rule."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service"

PROTOBUF = ("google.protobuf", "glassbox_client")
GRPC = ("grpc", "grpc_health", "grpc_reflection")


@dataclass(frozen=True)
class Rule:
    why: str
    modules: tuple[str, ...]
    forbidden: tuple[str, ...]
    exempt: tuple[str, ...] = ()

    def applies_to(self, module: str) -> bool:
        return _under(module, self.modules) and not _under(module, self.exempt)


RULES = (
    Rule(
        "wire/ is the one place outside server/ that translates protobuf (`glassbox predict` in cli.py "
        "runs the client)",
        modules=("glassbox",),
        forbidden=PROTOBUF,
        exempt=("glassbox.server", "glassbox.wire", "glassbox.cli"),
    ),
    Rule(
        "grpc is the server's transport: no module outside server/ imports it",
        modules=("glassbox",),
        forbidden=GRPC,
        exempt=("glassbox.server",),
    ),
)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SERVICE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                base = ".".join(package[: len(package) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return sorted(found)


MODULES = {_module_name(path): path for path in sorted((SERVICE / "glassbox").rglob("*.py"))}


def violations(rule: Rule, modules: dict[str, Path]) -> list[str]:
    return [
        f"{path.relative_to(SERVICE)}:{line} imports {name}"
        for module, path in modules.items()
        if rule.applies_to(module)
        for line, name in _imports(path, module)
        if _under(name, rule.forbidden)
    ]


@pytest.mark.parametrize("rule", RULES, ids=[rule.why.split(":")[0][:60] for rule in RULES])
def test_the_import_rule_holds(rule: Rule) -> None:
    assert violations(rule, MODULES) == [], rule.why


@pytest.mark.parametrize("rule", RULES, ids=[rule.why.split(":")[0][:60] for rule in RULES])
def test_every_module_a_rule_names_exists(rule: Rule) -> None:
    """A renamed package must not leave a rule that silently applies to nothing."""
    for name in (*rule.modules, *rule.exempt):
        assert any(_under(module, (name,)) for module in MODULES), f"{name} names no module"


def test_a_forbidden_import_is_found(tmp_path: Path) -> None:
    """The checker itself: plain, aliased, nested and relative imports are all seen."""
    source = tmp_path / "glassbox" / "jobs" / "bad.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "import grpc.aio as transport\n"
        "def f():\n"
        "    from google.protobuf.message import Message\n"
        "from .kinds import JobKind\n",
        encoding="utf-8",
    )
    imports = [name for _, name in _imports(source, "glassbox.jobs.bad")]
    assert imports == ["grpc.aio", "google.protobuf.message", "glassbox.jobs.kinds"]
    assert _under("grpc.aio", GRPC) and not _under("grpcio_tools", GRPC)
