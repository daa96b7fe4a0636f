"""The worker's functions as remote CuPy knows them: names, kinds and signatures.

Asked of the worker module by module, once per process, at the first name that needs it (a
function outside the client's own rules, ``dir()``, or a signature), and kept: the library on the
GPU server does not change while a program runs. Nothing in it is evaluated: defaults are literal values, or stand-ins
that show the worker's repr.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from ...protocol import catalog, wire
from ...protocol.v1 import bitshare_pb2 as pb
from .. import session as sessions
from . import errors

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_P = inspect.Parameter
KINDS = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD, _P.VAR_POSITIONAL, _P.KEYWORD_ONLY, _P.VAR_KEYWORD)  # by value
MAX_FUNCTIONS = 20_000


@dataclass(frozen=True)
class Entry:
    qualified: str
    kind: str  # "ufunc" or "function"
    nin: int = 0
    nout: int = 0
    params: tuple[tuple[Any, ...], ...] | None = None


class Default:
    """A default the worker could only describe: shown as the worker's repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class Listing:
    """The functions of one of the worker's modules, by qualified name (``linalg.norm``)."""

    def __init__(self, prefix: str, text: str) -> None:
        self.prefix = prefix
        try:
            parsed = json.loads(text)
            functions = parsed["functions"]
        except (ValueError, KeyError, TypeError):
            raise errors.ProtocolError(
                "the worker's list of functions is not valid JSON of the expected form"
            ) from None
        if not isinstance(functions, dict) or len(functions) > MAX_FUNCTIONS:
            raise errors.ProtocolError("the worker's list of functions is not a mapping of a sensible size")
        self.entries: dict[str, Entry] = {}
        for qualified, described in functions.items():
            entry = _entry(prefix, qualified, described)
            if entry is not None:
                self.entries[qualified] = entry

    def entry(self, qualified: str) -> Entry | None:
        return self.entries.get(qualified)

    def names(self) -> list[str]:
        """The functions' names, without the module's prefix."""
        return sorted(catalog.split(qualified)[1] for qualified in self.entries)

    @functools.cache  # noqa: B019 - one listing per process, kept for its life
    def signature(self, qualified: str) -> inspect.Signature | None:
        entry = self.entries.get(qualified)
        if entry is None or entry.params is None:
            return None
        parameters = []
        for name, kind, *default in entry.params:
            value = inspect.Parameter.empty
            if default:
                value = default[0]["value"] if "value" in default[0] else Default(str(default[0].get("repr", "?")))
            parameters.append(inspect.Parameter(name, KINDS[kind], default=value))
        try:
            return inspect.Signature(parameters)
        except ValueError:  # (an order Python itself would refuse: no signature rather than a wrong one)
            return None


def _entry(module: str, qualified: Any, described: Any) -> Entry | None:
    """One function of the listing, or None for one that is not of the module, or denied."""
    if not isinstance(qualified, str) or not isinstance(described, dict):
        return None
    prefix, name = catalog.split(qualified)
    if prefix != module or not _NAME.match(name) or catalog.denied(qualified):
        return None
    kind = described.get("kind")
    if kind not in ("ufunc", "function"):
        return None
    params = described.get("params")
    checked = _params(params) if params is not None else None
    nin, nout = described.get("nin", 0), described.get("nout", 0)
    if not isinstance(nin, int) or not isinstance(nout, int):
        return None
    return Entry(qualified, kind, nin, nout, checked)


def _params(params: Any) -> tuple[tuple[Any, ...], ...] | None:
    if not isinstance(params, list):
        return None
    out = []
    for item in params:
        if not isinstance(item, list) or len(item) not in (2, 3):
            return None
        name, kind = item[0], item[1]
        if not isinstance(name, str) or not name.isidentifier() or kind not in range(5):
            return None
        if len(item) == 3 and not (isinstance(item[2], dict) and ("value" in item[2] or "repr" in item[2])):
            return None
        out.append(tuple(item))
    return tuple(out)


_LISTINGS: dict[str, Listing] = {}


def available() -> bool:
    """A session is open, or can be: ``bitshare run --remote`` set the environment."""
    return sessions.current() is not None or bool(
        os.environ.get("BITSHARE_SERVER") and os.environ.get("BITSHARE_LEASE_ID")
    )


def listing(prefix: str) -> Listing | None:
    """The functions of the worker's module ``prefix`` (``""``: cupy), asked once; None where no
    session can be opened."""
    if prefix not in _LISTINGS:
        if not available():
            return None
        owner = sessions.session()
        owner.queue(pb.ROp(kind=pb.ROp.KIND_QUERY, name="surface", args=[pb.RValue(str=prefix)]))
        result, _ = owner.sync()
        text = wire.decode(result.values[-1], lambda _h: None)
        if not isinstance(text, str):
            raise errors.ProtocolError("the worker did not list its functions")
        _LISTINGS[prefix] = Listing(prefix, text)
    return _LISTINGS[prefix]


def entry(qualified: str) -> Entry | None:
    found = listing(catalog.split(qualified)[0])
    return found.entry(qualified) if found is not None else None


def signature(qualified: str) -> inspect.Signature | None:
    found = listing(catalog.split(qualified)[0]) if available() else None
    return found.signature(qualified) if found is not None else None
