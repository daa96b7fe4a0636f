"""Values on the remote wire: Python values <-> ``RValue`` messages, checked on arrival.

Shared by remote CuPy (which encodes) and the worker (which decodes). Arrays held by
the worker travel as handles; small host arrays travel inline as dtype, shape and raw
bytes. Nothing else crosses: no objects, no pickles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .v1 import bitshare_pb2 as pb

INLINE_LIMIT = 1 << 20  # host arrays up to this many bytes travel inline; larger ones are uploaded
MAX_NDIM = 32
MAX_DEPTH = 16
CUPY_DTYPE_CHARS = "?bhilqBHILQefdFD"  # what CuPy's arrays hold: bool, integers, float16/32/64, complex64/128


class WireError(ValueError):
    """A value on the wire that cannot be accepted; the message says which and why."""


def check_dtype(name: str) -> np.dtype:
    """A dtype of numbers or booleans, in this machine's byte order."""
    try:
        dtype = np.dtype(name)
    except TypeError:
        raise WireError(f"unknown dtype {name!r}") from None
    if dtype.char not in CUPY_DTYPE_CHARS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"dtype {name!r} is not supported: arrays hold booleans or numbers")
    if dtype.byteorder not in ("=", "|", "<"):
        raise WireError(f"dtype {name!r} is big-endian; send little-endian data")
    return dtype


def cupy_dtype(value: Any) -> np.dtype:
    """``value`` as a dtype CuPy's arrays can hold, else the ValueError CuPy raises for it
    (``Unsupported dtype <U5``): strings, objects, structured, datetimes and long doubles are
    refused when the array is made, not when its data is read."""
    dtype = np.dtype(value)
    if dtype.byteorder == ">":
        raise ValueError(f"Unsupported dtype {dtype} with big-endian byte-order")
    if dtype.char not in CUPY_DTYPE_CHARS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"Unsupported dtype {dtype}")
    return dtype


def native(array: np.ndarray) -> np.ndarray:
    """A big-endian host array in this machine's byte order (CuPy swaps such arrays too)."""
    if array.dtype.byteorder == ">":
        return array.astype(array.dtype.newbyteorder("="))
    return array


def check_shape(shape: Any) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    if len(dims) > MAX_NDIM:
        raise WireError(f"an array of {len(dims)} dimensions; at most {MAX_NDIM}")
    return dims


def nbytes_of(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def meta_pb(shape: tuple[int, ...], dtype: np.dtype | str) -> pb.RMeta:
    if isinstance(dtype, np.dtype):  # (most often: comparing a dtype with "" costs a failed conversion)
        return pb.RMeta(shape=shape, dtype=dtype.str)
    return pb.RMeta(shape=shape, dtype=np.dtype(dtype).str if dtype != "" else "")


def contiguous(array: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping the shape (``np.ascontiguousarray`` makes a 0-d array 1-d)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def host_array(array: np.ndarray) -> pb.RHostArray:
    array = contiguous(native(array))
    cupy_dtype(array.dtype)
    return pb.RHostArray(dtype=array.dtype.str, shape=array.shape, data=array.tobytes())


def encode(value: Any, handle_of: Callable[[Any], int | None]) -> pb.RValue:
    """``handle_of`` gives the worker handle of a remote array, None for anything else."""
    handle = handle_of(value)
    if handle is not None:
        return pb.RValue(handle=handle)
    if value is None:
        return pb.RValue(none=pb.RNone())
    if value is Ellipsis:
        return pb.RValue(ellipsis=pb.RNone())
    if isinstance(value, np.generic):  # a NumPy scalar keeps its dtype (kernels need it)
        return pb.RValue(array=host_array(np.asarray(value)))
    if isinstance(value, bool):
        return pb.RValue(bool=value)
    if isinstance(value, int):
        return pb.RValue(int=value)
    if isinstance(value, float):
        return pb.RValue(float=value)
    if isinstance(value, complex):
        return pb.RValue(complex=pb.RComplex(real=value.real, imag=value.imag))
    if isinstance(value, str):
        return pb.RValue(str=value)
    if isinstance(value, slice):
        return pb.RValue(
            slice=pb.RSlice(
                start=encode(value.start, handle_of),
                stop=encode(value.stop, handle_of),
                step=encode(value.step, handle_of),
            )
        )
    if isinstance(value, (list, tuple)):
        return pb.RValue(list=pb.RList(items=[encode(v, handle_of) for v in value], tuple=isinstance(value, tuple)))
    if isinstance(value, (np.dtype, type)):  # a dtype, given as NumPy's or as float, int, bool, complex
        try:
            dtype = np.dtype(value)
        except TypeError:
            raise TypeError(f"bitshare cannot send the type {value.__name__} to the GPU server") from None
        return pb.RValue(dtype=cupy_dtype(dtype).str)
    if isinstance(value, np.ndarray):
        return pb.RValue(array=host_array(value))
    raise TypeError(f"bitshare cannot send a {type(value).__name__} to the GPU server")


def decode(
    value: pb.RValue,
    array_of: Callable[[int], Any],
    host: Callable[[np.ndarray], Any] = lambda a: a,
    depth: int = 0,
) -> Any:
    """``array_of`` gives the worker's array for a handle (raising KeyError for an unknown one);
    ``host`` turns an inline host array into what the worker computes with. A 0-d host array
    is a NumPy scalar."""
    if depth > MAX_DEPTH:
        raise WireError(f"values nested deeper than {MAX_DEPTH}")
    which = value.WhichOneof("kind")
    if which == "handle":
        return array_of(value.handle)
    if which in ("float", "int", "bool", "str"):
        return getattr(value, which)
    if which == "complex":
        return complex(value.complex.real, value.complex.imag)
    if which in (None, "none"):
        return None
    if which == "ellipsis":
        return Ellipsis
    if which == "newaxis":
        return None
    if which == "dtype":
        return check_dtype(value.dtype)
    if which == "slice":
        parts = [decode(p, array_of, host, depth + 1) for p in (value.slice.start, value.slice.stop, value.slice.step)]
        return slice(*parts)
    if which == "list":
        items = [decode(v, array_of, host, depth + 1) for v in value.list.items]
        return tuple(items) if value.list.tuple else items
    if which == "array":
        array = decode_host_array(value.array)
        return array[()] if array.ndim == 0 else host(array)
    raise WireError(f"unknown value kind {which!r}")


def decode_host_array(message: pb.RHostArray) -> np.ndarray:
    dtype = check_dtype(message.dtype)
    shape = check_shape(message.shape)
    if nbytes_of(shape, dtype) != len(message.data):
        raise WireError(f"{len(message.data)} bytes do not make an array of shape {shape} and dtype {dtype}")
    return np.frombuffer(message.data, dtype=dtype).reshape(shape).copy()
