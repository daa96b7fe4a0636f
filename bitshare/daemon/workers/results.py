"""The forms in which a function of the worker's surface returns its results, as the client reads
them (``ROp.results``): an array, a tuple or list of arrays, a named tuple, or a plain value."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...protocol.wire import WireError, encode
from .faults import RemoteFault

_EXPECTED = {"array": ("array",), "tuple": ("tuple", "namedtuple"), "list": ("list",)}


def form(xp: Any, name: str, result: Any) -> tuple[list[Any], list[Any]]:
    """(the form as the client reads it, the arrays to hold). A plain value's form carries it:
    ``["value", value]``."""
    if isinstance(result, xp.ndarray):
        return ["array"], [result]
    if isinstance(result, (tuple, list)) and any(isinstance(item, xp.ndarray) for item in result):
        if not all(isinstance(item, xp.ndarray) or _is_number(item) for item in result):
            raise RemoteFault("TypeError", f"{name} returned a {type(result).__name__} of arrays and other objects")
        fields = getattr(type(result), "_fields", None)  # a named tuple, as the Array API's unique_all gives
        if fields is not None:
            return ["namedtuple", len(result), type(result).__name__, *fields], list(result)
        return ["list" if isinstance(result, list) else "tuple", len(result)], list(result)
    if isinstance(result, np.generic):
        return ["array"], [result]  # (NumPy's scalar: CuPy gives a 0-d array)
    try:
        encode(result, lambda _v: None)
    except (TypeError, ValueError):
        raise RemoteFault(
            "TypeError", f"{name} returned a {type(result).__name__}, which bitshare's remote CuPy cannot hold"
        ) from None
    return ["value", result], []


def mismatch(name: str, expected: str, count: int, found: list[Any], arrays: int) -> str:
    """Why results of form ``found`` are not the ``expected`` form of ``count`` arrays ("" if they are)."""
    kinds = _EXPECTED.get(expected)
    if kinds is None:
        raise WireError(f"unknown result form {expected!r}")
    if found[0] in kinds and arrays == count:
        return ""
    return (
        f"{name} gave {_told(found[0], arrays)} where {_told(expected, count)} was expected "
        "(it returned another form for other arguments before)"
    )


def _told(form: str, count: int) -> str:
    """A form of results in words: "an array", "a tuple of 2 arrays", "a value"."""
    return {"array": "an array", "value": "a value"}.get(form, f"a {form} of {count} arrays")


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float, complex, np.generic))
