"""Exceptions of remote GPU access shared by remote CuPy and remote PyTorch: bitshare's own (a lost
lease or array, a protocol mismatch), and the worker's errors turned into each library's types."""

from __future__ import annotations

from collections.abc import Callable

from .. import errors
from ..protocol.v1 import bitshare_pb2 as pb


class LeaseLost(errors.LeaseLost, RuntimeError):
    """The remote session ended: the lease was revoked or expired, or its worker crashed."""


class ArrayLost(errors.ArrayLost, RuntimeError):
    """An array held by a worker that is gone: bitshared restarted, and the session went on with a
    new worker (the lease is kept; arrays made since work)."""


class ProtocolError(errors.BitshareError, RuntimeError):
    """The client and the worker disagree about the protocol (a bug, or mismatched versions)."""


BUILTINS: dict[str, type[BaseException]] = {
    cls.__name__: cls
    for cls in (
        IndexError,
        ValueError,
        TypeError,
        ZeroDivisionError,
        FloatingPointError,
        NotImplementedError,
        MemoryError,
        RuntimeError,
    )
}
BUILTINS["ProtocolError"] = ProtocolError

# Each library's types, by the prefix of the failed operation's name ("" for CuPy's names):
# an error raises as the library whose operation failed would raise it.
_LIBRARIES: dict[str, dict[str, type[BaseException]]] = {}


def register(prefix: str, types: dict[str, type[BaseException]]) -> None:
    _LIBRARIES[prefix] = types


def from_remote(error: pb.RError) -> BaseException:
    """The exception a worker's error becomes on the client (raised at the sync point)."""
    types: Callable[[str], type[BaseException] | None] = BUILTINS.get
    for prefix, library in _LIBRARIES.items():
        if prefix and error.op_name.startswith(prefix):
            types = library.get
            break
    else:
        types = _LIBRARIES.get("", BUILTINS).get
    cls = types(error.type) or BUILTINS.get(error.type, RuntimeError)
    where = f" (in {error.op_name})" if error.op_name and error.op_name not in error.message else ""
    return cls(f"{error.message}{where}")
