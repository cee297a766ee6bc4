"""The registry of attribution methods: name → method class. A new method is one module that
registers itself here (and one row in the conformance test).

Every module of the `glassbox.methods` package is imported the first time the registry is asked, so
a method module needs no other wiring than its `@register(name)`.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from glassbox.backends.base import Model

if TYPE_CHECKING:
    from glassbox.methods.base import AttributionMethod

T = TypeVar("T", bound="type[AttributionMethod]")

_METHODS: dict[str, type[AttributionMethod]] = {}
_DISCOVERY_LOCK = threading.Lock()
_discovered = False


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a method available under `name` (the AttributeRequest oneof field name)."""

    def decorate(cls: T) -> T:
        if name in _METHODS:
            raise ValueError(f"attribution method {name!r} is registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorate


def _discover() -> None:
    """Import every module of this package once, so that their `@register` decorators have run."""
    global _discovered
    if _discovered:
        return
    with _DISCOVERY_LOCK:
        if _discovered:
            return
        package = importlib.import_module(__package__)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__package__}.{module.name}")
        _discovered = True


def method_names() -> list[str]:
    _discover()
    return sorted(_METHODS)


def method_class(name: str) -> type[AttributionMethod]:
    """The class registered as `name`; KeyError when there is none."""
    _discover()
    return _METHODS[name]


def smoothable_methods() -> list[str]:
    """The methods SmoothGrad can wrap (their class says `smoothable = True`): its `base` choices."""
    _discover()
    return [name for name, cls in sorted(_METHODS.items()) if cls.smoothable]


def supported_methods(model: Model) -> list[str]:
    """The methods this model can serve (gradient methods need a backend with gradients, and some
    methods need more, e.g. ReLU modules or hookable layers: each class's `unsupported_reason` says)."""
    _discover()
    return [name for name, cls in sorted(_METHODS.items()) if cls.unsupported_reason(model) is None]
