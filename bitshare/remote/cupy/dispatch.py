"""What array.py finds by name but cannot import: NumPy functions called on remote arrays (the
table ``ndarray.__array_function__`` consults) and the worker's other array methods.

namespace.py and forward.py build them out of arrays, so array.py cannot import them; they
register their lookups here when the package is imported, and array.py asks here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Lookup = Callable[[str, str], Callable[..., Any] | None]

_LOOKUPS: list[Lookup] = []  # at most one: namespace.lookup


def register(lookup: Lookup) -> None:
    """Answer ``numpy_function`` with ``lookup`` (namespace.py calls it once, at import)."""
    _LOOKUPS[:] = [lookup]


def numpy_function(module: str, name: str) -> Callable[..., Any] | None:
    """Our version of the NumPy function ``module.name``, or None where it is not covered."""
    return _LOOKUPS[0](module, name) if _LOOKUPS else None


MethodLookup = Callable[[Any, str], Callable[..., Any] | None]

_METHODS: list[MethodLookup] = []  # at most one: forward.method


def register_methods(lookup: MethodLookup) -> None:
    """Answer ``array_method`` with ``lookup`` (forward.py calls it once, at import)."""
    _METHODS[:] = [lookup]


def array_method(array: Any, name: str) -> Callable[..., Any] | None:
    """The worker's method ``name`` bound to ``array``, or None where it has none."""
    return _METHODS[0](array, name) if _METHODS else None
