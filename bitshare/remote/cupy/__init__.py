"""bitshare's CuPy for remote leases: ``import cupy`` under ``bitshare run --remote``.

Arrays live in the lease's worker on the GPU server; operations are queued here and sent in
batches at sync points. The covered surface is listed in :mod:`bitshare.protocol.catalog` and
docs/remote.md; anything else raises :class:`~.errors.Uncovered` naming it (both an
``AttributeError``, so ``hasattr`` is False, and a ``NotImplementedError``).
"""

from __future__ import annotations

import sys

import numpy as _np

from . import cuda  # noqa: F401
from .array import ndarray  # noqa: F401
from .array_api import API_VERSION as __array_api_version__  # noqa: F401 - the Array API standard's
from .array_api import __array_namespace_info__  # noqa: F401
from .cuda import get_default_memory_pool  # noqa: F401 - cupy.get_default_memory_pool, as in CuPy
from .errors import ArrayLost, KernelUnavailable, LeaseLost, OutOfMemoryError, Uncovered  # noqa: F401 - part of the module
from .kernels import ElementwiseKernel, RawKernel, ReductionKernel  # noqa: F401
from .namespace import SCIPY, TOP, fft, linalg, random  # noqa: F401
from .namespace import attributes as _attributes

globals().update(TOP)

__version__ = "13.0.0+bitshare.remote"
IS_BITSHARE_REMOTE = True

# dtypes and constants are NumPy's, as in CuPy.
for _name in [
    "bool",  # the Array API's name (NumPy 2)
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "intp",
    "uintp",
    "byte",
    "ubyte",
    "short",
    "ushort",
    "intc",
    "uintc",
    "int_",
    "uint",
    "longlong",
    "ulonglong",
    "half",
    "single",
    "double",
    "csingle",
    "cdouble",
    "dtype",
    "finfo",
    "iinfo",
    "result_type",
    "can_cast",
    "promote_types",
    "issubdtype",
    "isdtype",
    "number",
    "integer",
    "floating",
    "complexfloating",
    "signedinteger",
    "unsignedinteger",
    "generic",
    "pi",
    "e",
    "inf",
    "nan",
    "newaxis",
    "euler_gamma",
]:
    if hasattr(_np, _name):
        globals()[_name] = getattr(_np, _name)


__getattr__, __dir__ = _attributes(sys.modules[__name__], "")
