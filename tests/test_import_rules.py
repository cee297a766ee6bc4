"""The service's import rules, read from the source (the AST of every module under service/glassbox,
imports inside functions included), so a forbidden import fails here without importing anything.

`LAYERS` places every top-level package (and top-level module) of glassbox in a layer: a package may
import only from layers below its own (docs/architecture.md draws the same picture). A new package
fails `test_every_package_has_a_layer` until it is placed.

`RULES` is the table of the other rules: each names the modules it applies to (a package covers
everything under it), the imports they must not make (likewise by prefix) and the modules exempt from
it. Add a row to add a rule."""

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


LAYERS: tuple[tuple[str, ...], ...] = (
    ("config",),  # settings: pydantic models, no glassbox import
    ("core",),  # domain types, errors, the pixel contract, CallContext, ModelConfig
    ("backends", "devices", "render"),  # the Model interface and its torch/ONNX adapters; devices; PNGs
    ("models", "cache"),  # the model repository; the result cache port and its adapters
    ("jobs", "common", "demo"),  # job engine port + adapters; what the areas share; the demo generator
    ("serving",),  # the compute scheduler: units, batching, admission
    ("methods",),  # attribution methods and their registry
    ("generative", "robustness", "evaluation"),  # job areas built on methods
    ("inspection", "monitoring"),  # areas built on the ones above (atlas on feature visualisation, ...)
    ("wire", "metrics"),  # protobuf ↔ core; Prometheus metrics
    ("server", "prior_cli"),  # gRPC/HTTP adapters and the composition root; `glassbox prior`
    ("cli",),  # the `glassbox` command
)
"""Bottom to top. A package may import from the layers below its own, never from its own layer's other
packages or from above."""

LAYER_OF = {package: index for index, layer in enumerate(LAYERS) for package in layer}


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


def _shown(path: Path) -> str:
    return str(path.relative_to(SERVICE) if path.is_relative_to(SERVICE) else path)


def _package(module: str) -> str:
    """The top-level glassbox package (or module) `module` belongs to."""
    return module.split(".")[1]


def layer_violations(modules: dict[str, Path]) -> list[str]:
    found = []
    for module, path in modules.items():
        if module == "glassbox":
            continue
        own = _package(module)
        for line, name in _imports(path, module):
            if not name.startswith("glassbox.") or _package(name) == own:
                continue
            other = _package(name)
            if LAYER_OF.get(other, len(LAYERS)) >= LAYER_OF[own]:
                found.append(f"{_shown(path)}:{line} imports {name} ({own} may not import {other})")
    return found


def test_every_package_has_a_layer() -> None:
    packages = {_package(module) for module in MODULES if module != "glassbox"}
    assert sorted(packages - set(LAYER_OF)) == [], "place the new package in LAYERS"
    assert sorted(set(LAYER_OF) - packages) == [], "LAYERS names a package that does not exist"


def test_each_package_imports_only_from_layers_below_it() -> None:
    assert layer_violations(MODULES) == []


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    source = tmp_path / "glassbox" / "core" / "bad.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from glassbox.methods.base import AttributionMethod\n", encoding="utf-8")
    assert layer_violations({"glassbox.core.bad": source}) == [
        f"{source}:2 imports glassbox.methods.base (core may not import methods)"
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
