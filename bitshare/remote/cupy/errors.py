"""Exceptions remote CuPy raises: CuPy's types, so applications catch what they would catch,
and bitshare's own (a lost lease or array, a protocol mismatch) from the one error tree."""

from __future__ import annotations

import numpy as np

from ... import errors
from ..errors import BUILTINS, ArrayLost, LeaseLost, ProtocolError, from_remote, register

__all__ = ["ArrayLost", "LeaseLost", "ProtocolError", "Uncovered", "from_remote"]


class OutOfMemoryError(MemoryError):
    """``cupy.cuda.memory.OutOfMemoryError``: an allocation past the lease's partition."""


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``."""


class CompileException(Exception):
    """``cupy.cuda.compiler.CompileException``: a kernel that does not compile."""


class Uncovered(AttributeError, NotImplementedError):
    """A name remote CuPy does not cover. An AttributeError, so that ``hasattr`` answers False and
    ``getattr(cupy, name, None)`` gives None, as feature detection expects; a NotImplementedError,
    as it always was."""


class KernelUnavailable(errors.BitshareError, RuntimeError):
    """A CUDA kernel on a lease whose GPU is simulated (NumPy on the CPU has no CUDA compiler)."""


register(
    "",
    {
        **BUILTINS,
        "OutOfMemoryError": OutOfMemoryError,
        "CUDARuntimeError": CUDARuntimeError,
        "CompileException": CompileException,
        "KernelUnavailable": KernelUnavailable,
        "LinAlgError": np.linalg.LinAlgError,
        "AxisError": np.exceptions.AxisError,
    },
)
