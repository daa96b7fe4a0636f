"""Functions of the worker's library called by name, with the worker's signatures.

A function the client has rules for runs its own code (``implementation``): results with a known
shape, no round trip. Any other function of the worker's surface is sent by name with the
arguments as given. Its first call with a given kind of arguments waits for the worker to say
what came back (an array, a tuple or list of arrays, a named tuple, or a plain value); later
calls like it are queued, expecting the same form, which the worker checks.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from ...protocol import catalog, wire
from ...protocol.v1 import bitshare_pb2 as pb
from ..session import session
from . import cuda, dispatch, errors, listing
from .array import elementwise, make_op, ndarray, queue_op

Op = pb.ROp
RESERVED = 64  # handles set aside for the arrays of a call whose form is not known yet
MAX_FORMS = 4096
_ARRAY_FORMS = ("array", "tuple", "list", "namedtuple")


class RemoteFunction:
    """``cupy.<name>``: runs on the lease's GPU worker."""

    def __init__(self, qualified: str, implementation: Callable[..., Any] | None = None) -> None:
        prefix, name = catalog.split(qualified)
        self.__name__ = self.__qualname__ = name
        self.__module__ = catalog.module_name(prefix)
        self.__doc__ = f"{self.__module__}.{name}, run by the lease's GPU worker."
        self._qualified = qualified
        self._implementation = implementation

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "device" in kwargs:  # (arrays are made on the lease's one GPU: checked here, not sent)
            cuda.check_device(kwargs.pop("device"))
        if self._implementation is not None:
            return self._implementation(*args, **kwargs)
        entry = listing.entry(self._qualified)
        if entry is None:
            raise errors.Uncovered(f"{self.__module__}.{self.__name__} is not on the GPU server's CuPy")
        signature = listing.signature(self._qualified)
        if signature is not None:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{self.__name__}() {exc}") from None
        if entry.kind == "ufunc" and entry.nout == 1 and _numpy_ufunc(self.__name__, entry.nin):
            return elementwise(self.__name__, *args, **kwargs)
        return forward(self._qualified, args, kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        signature = listing.signature(self._qualified)
        if signature is not None:
            return signature
        if self._implementation is not None:
            return inspect.signature(self._implementation)
        raise AttributeError("__signature__")

    def __repr__(self) -> str:
        return f"<remote function {self.__module__}.{self.__name__}>"


def _numpy_ufunc(name: str, nin: int) -> bool:
    """The client works out the result's meta with NumPy's ufunc of that name, where it has one
    (elementwise: a generalized ufunc like ``vecdot`` has core dimensions, which the worker tells)."""
    target = getattr(np, name, None)
    return isinstance(target, np.ufunc) and target.nin == nin and target.nout == 1 and target.signature is None


# ----- calls by name ------------------------------------------------------------------------------

_forms: dict[tuple[Any, ...], tuple[str, int, type | None]] = {}  # what a kind of call returned before


def forward(qualified: str, args: tuple[Any, ...], kwargs: dict[str, Any], kind_of_op: int = Op.KIND_CALL) -> Any:
    """Call the worker's function ``qualified`` (a method: ``ndarray.name``, the array first in ``args``)."""
    key = (qualified, tuple(_token(a) for a in args), tuple(sorted((k, _token(v)) for k, v in kwargs.items())))
    name = catalog.split(qualified)[1] if kind_of_op == Op.KIND_METHOD else qualified
    known = _forms.get(key)
    if known is not None:
        form, count, kind = known
        arrays = queue_op(kind_of_op, name, args, kwargs, [None] * count, results=_wire_form(form))
        return _assemble(form, kind, arrays)
    form, count, kind, arrays, value = _describe(kind_of_op, name, args, kwargs)
    if form == "value":
        return value
    if len(_forms) >= MAX_FORMS:
        _forms.clear()
    _forms[key] = (form, count, kind)
    return _assemble(form, kind, arrays)


def _wire_form(form: str) -> str:
    return "tuple" if form == "namedtuple" else form


def _assemble(form: str, kind: type | None, arrays: list[ndarray]) -> Any:
    if form == "array":
        return arrays[0]
    if form == "list":
        return list(arrays)
    if kind is not None:
        return kind(*arrays)
    return tuple(arrays)


def _describe(
    kind_of_op: int, qualified: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, int, type | None, list[ndarray], Any]:
    """Run the call now; the worker tells the form of what it returned."""
    owner = session()
    handles = [owner.new_handle() for _ in range(RESERVED)]
    op = make_op(owner, kind_of_op, qualified, args, kwargs, handles, results="describe")
    owner.queue(op)
    result, _ = owner.sync()
    told = wire.decode(result.values[-1], lambda _h: None)
    if not isinstance(told, (list, tuple)) or not told or told[0] not in (*_ARRAY_FORMS, "value"):
        raise errors.ProtocolError(f"the worker described the result of {qualified} as {told!r}")
    form = told[0]
    if form == "value":
        return form, 0, None, [], told[1] if len(told) > 1 else None
    count = 1 if form == "array" else int(told[1])
    if not 0 <= count <= RESERVED or any(h not in result.metas for h in handles[:count]):
        raise errors.ProtocolError(f"the worker's answer for {qualified} lacks the arrays it describes")
    arrays = []
    for handle in handles[:count]:
        meta = result.metas[handle]
        arrays.append(ndarray(owner, handle, (tuple(meta.shape), wire.check_dtype(meta.dtype))))
    kind = _named_tuple(str(told[2]), [str(f) for f in told[3:]]) if form == "namedtuple" else None
    return form, count, kind, arrays, None


_named_tuples: dict[tuple[str, tuple[str, ...]], type] = {}


def _named_tuple(name: str, fields: list[str]) -> type | None:
    """The worker's named tuple (``UniqueAllResult``) made here, by its names alone."""
    key = (name, tuple(fields))
    if key not in _named_tuples:
        try:
            _named_tuples[key] = collections.namedtuple(name, fields)
        except (TypeError, ValueError):
            return None
    return _named_tuples[key]


def _token(value: Any) -> Any:
    """What of an argument can change the form of a result: flags and small numbers by value,
    arrays by their number of dimensions (where known without asking), sequences by length."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value) if -(1 << 16) < value < 1 << 16 else "int"
    if isinstance(value, ndarray):
        shape = value._shape
        return ("array", len(shape) if shape is not None else None)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, len(value))
    return type(value).__name__


def method(array: ndarray, name: str) -> Callable[..., Any] | None:
    """The worker's array method ``name``, bound to ``array``; None where the worker has none."""
    qualified = f"{catalog.METHODS_PREFIX}.{name}"
    if listing.entry(qualified) is None:
        return None

    def bound(*args: Any, **kwargs: Any) -> Any:
        return forward(qualified, (array, *args), kwargs, Op.KIND_METHOD)

    bound.__name__ = bound.__qualname__ = name
    bound.__doc__ = f"cupy.ndarray.{name}, run by the lease's GPU worker."
    return bound


dispatch.register_methods(method)
