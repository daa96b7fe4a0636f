"""NumPy functions called on remote arrays: the table ``ndarray.__array_function__`` consults.

namespace.py builds our versions of NumPy's functions out of arrays, so array.py cannot import it;
namespace.py registers its lookup here when the package is imported, and array.py asks here.
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
