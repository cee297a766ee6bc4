"""The registry of attribution methods: name → method class. A new method is one module that
registers itself here (and one row in the conformance test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from glassbox.backends.base import Model

T = TypeVar("T", bound=type)

_METHODS: dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a method available under `name` (the AttributeRequest oneof field name)."""

    def decorate(cls: T) -> T:
        if name in _METHODS:
            raise ValueError(f"attribution method {name!r} is registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorate


def method_names() -> list[str]:
    return sorted(_METHODS)


def method_class(name: str) -> type:
    return _METHODS[name]


def supported_methods(model: Model) -> list[str]:
    """The methods this model can serve: gradient methods need a backend with gradients."""
    return [name for name, cls in sorted(_METHODS.items()) if model.supports_gradients or not cls.needs_gradients]
