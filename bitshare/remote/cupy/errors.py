"""Exceptions remote CuPy raises: CuPy's types, so applications catch what they would catch,
and bitshare's own (a lost lease or array, a protocol mismatch) from the one error tree."""

from __future__ import annotations

import numpy as np

from ... import errors
from ...protocol.v1 import bitshare_pb2 as pb


class OutOfMemoryError(MemoryError):
    """``cupy.cuda.memory.OutOfMemoryError``: an allocation past the lease's partition."""


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``."""


class CompileException(Exception):
    """``cupy.cuda.compiler.CompileException``: a kernel that does not compile."""


class KernelUnavailable(errors.BitshareError, RuntimeError):
    """A CUDA kernel on a lease whose GPU is simulated (NumPy on the CPU has no CUDA compiler)."""


class LeaseLost(errors.LeaseLost, RuntimeError):
    """The remote session ended: the lease was revoked or expired, or its worker crashed."""


class ArrayLost(errors.ArrayLost, RuntimeError):
    """An array held by a worker that is gone: bitshared restarted, and the session went on with a
    new worker (the lease is kept; arrays made since work)."""


class ProtocolError(errors.BitshareError, RuntimeError):
    """The client and the worker disagree about the protocol (a bug, or mismatched versions)."""


_TYPES: dict[str, type[BaseException]] = {
    "OutOfMemoryError": OutOfMemoryError,
    "CUDARuntimeError": CUDARuntimeError,
    "CompileException": CompileException,
    "KernelUnavailable": KernelUnavailable,
    "LinAlgError": np.linalg.LinAlgError,
    "AxisError": np.exceptions.AxisError,
    "ProtocolError": ProtocolError,
    **{
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
    },
}


def from_remote(error: pb.RError) -> BaseException:
    """The exception a worker's error becomes on the client (raised at the sync point)."""
    cls = _TYPES.get(error.type, RuntimeError)
    where = f" (in {error.op_name})" if error.op_name and error.op_name not in error.message else ""
    return cls(f"{error.message}{where}")
