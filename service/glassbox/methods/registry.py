"""The registry of attribution methods: name → method class, over `catalogue.ATTRIBUTION_METHODS` (the
one list of methods, as `wire.kinds.job_kinds()` is the one list of job kinds). A new method is one
module and one row in the catalogue (and one row in the conformance test).

The catalogue is read the first time the registry is asked (it imports every method module, and
method modules import the registry).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from glassbox.backends.base import Model

if TYPE_CHECKING:
    from glassbox.methods.base import AttributionMethod


@functools.cache
def _methods() -> dict[str, type[AttributionMethod]]:
    """The catalogue by name; a name given twice is a programming error."""
    from glassbox.methods.catalogue import ATTRIBUTION_METHODS

    methods: dict[str, type[AttributionMethod]] = {}
    for cls in ATTRIBUTION_METHODS:
        if cls.name in methods:
            raise ValueError(f"attribution method {cls.name!r} is in the catalogue twice")
        methods[cls.name] = cls
    return methods


def method_names() -> list[str]:
    return sorted(_methods())


def method_class(name: str) -> type[AttributionMethod]:
    """The class registered as `name`; KeyError when there is none."""
    return _methods()[name]


def smoothable_methods() -> list[str]:
    """The methods SmoothGrad can wrap (their class says `smoothable = True`): its `base` choices."""
    return [name for name, cls in sorted(_methods().items()) if cls.smoothable]


def supported_methods(model: Model) -> list[str]:
    """The methods this model can serve (gradient methods need a backend with gradients, and some
    methods need more, e.g. ReLU modules or hookable layers: each class's `unsupported_reason` says)."""
    return [name for name, cls in sorted(_methods().items()) if cls.unsupported_reason(model) is None]
