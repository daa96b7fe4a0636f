"""The Array API standard's array and namespace objects for remote CuPy: ``x.__array_namespace__()``,
``x.device``, ``x.to_device``, ``x.mT``, and the module's ``__array_namespace_info__``.

They answer as CuPy does for a program that sees one GPU: the lease's, device 0. ``__dlpack__`` is
left out: a remote array's memory is on the server, so no local consumer could use a capsule of it.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np

from . import cuda

API_VERSION = "2024.12"
API_VERSIONS = ("2021.12", "2022.12", "2023.12", "2024.12")  # what CuPy and NumPy 2 accept
# The standard's kinds of dtypes, for __array_namespace_info__().dtypes(kind=...).
KINDS: dict[str, tuple[str, ...]] = {
    "bool": ("bool",),
    "signed integer": ("int8", "int16", "int32", "int64"),
    "unsigned integer": ("uint8", "uint16", "uint32", "uint64"),
    "integral": ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
    "real floating": ("float32", "float64"),
    "complex floating": ("complex64", "complex128"),
}
KINDS["numeric"] = KINDS["integral"] + KINDS["real floating"] + KINDS["complex floating"]


DEVICE = cuda.Device(0)


def _namespace() -> types.ModuleType:
    """The ``cupy`` the program imported (the shim puts bitshare's there), else bitshare's own."""
    found = sys.modules.get("cupy")
    if found is not None and getattr(found, "IS_BITSHARE_REMOTE", False):
        return found
    return sys.modules[__name__.rpartition(".")[0]]


class ArrayAPI:
    """What the Array API standard asks of an array object, for remote ``cupy.ndarray``."""

    __slots__ = ()

    def __array_namespace__(self, *, api_version: str | None = None) -> types.ModuleType:
        if api_version is not None and not isinstance(api_version, str):
            raise ValueError(
                f"Only None and strings are allowed as the Array API version, but received: {api_version}."
            )
        if api_version is not None and api_version not in API_VERSIONS:
            raise ValueError(f'Version "{api_version}" of the Array API Standard is not supported.')
        return _namespace()

    @property
    def device(self) -> cuda.Device:
        return DEVICE

    def to_device(self, device: Any, /, *, stream: Any = None) -> Any:
        """The array itself on its own device; there is no other device to move it to."""
        if stream is not None and not isinstance(stream, (cuda.Stream, int)):
            raise TypeError(f"Unsupported stream type {stream!r}")
        if isinstance(device, cuda.Device) and device.id == DEVICE.id:
            return self
        raise ValueError(
            f"cannot move a remote array to {device!r}: a remote lease has one GPU, {DEVICE!r} "
            "(use .get() or cupy.asnumpy() for a host copy)"
        )

    @property
    def mT(self) -> Any:
        ndim = self.ndim  # type: ignore[attr-defined]
        if ndim < 2:
            raise ValueError("matrix transpose with ndim < 2 is undefined")
        # (transpose, not swapaxes: it knows the result's shape here, with no sync)
        return self.transpose((*range(ndim - 2), ndim - 1, ndim - 2))  # type: ignore[attr-defined]


class __array_namespace_info__:
    """The Array API inspection namespace of remote CuPy (CuPy's answers, for the lease's GPU)."""

    __module__ = "cupy"

    def capabilities(self) -> dict[str, Any]:
        return {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}

    def default_device(self) -> cuda.Device:
        return DEVICE

    def default_dtypes(self, *, device: Any = None) -> dict[str, np.dtype]:
        cuda.check_device(device)
        return {
            "real floating": np.dtype(np.float64),
            "complex floating": np.dtype(np.complex128),
            "integral": np.dtype(np.intp),
            "indexing": np.dtype(np.intp),
        }

    def dtypes(self, *, device: Any = None, kind: str | tuple[str, ...] | None = None) -> dict[str, np.dtype]:
        """The Array API's dtypes of CuPy (float16 is not one, though arrays can hold it)."""
        cuda.check_device(device)
        if kind is None:
            names = ("bool", *KINDS["numeric"])
        elif isinstance(kind, tuple):
            names = tuple(name for k in kind for name in self._names(k))
        else:
            names = self._names(kind)
        return {name: np.dtype(name) for name in names}

    def devices(self) -> list[cuda.Device]:
        return [DEVICE]

    def _names(self, kind: Any) -> tuple[str, ...]:
        if not isinstance(kind, str) or kind not in KINDS:
            raise ValueError(f"unsupported kind: {kind!r}")
        return KINDS[kind]
