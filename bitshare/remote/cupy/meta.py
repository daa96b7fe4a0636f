"""Shapes and dtypes of results, worked out on the client where NumPy's (and CuPy's) rules fix them.

A result whose meta is known here needs no round trip before the next operation uses it.
Where no rule is given the worker tells the meta at the next sync. The worker checks every
inferred meta and corrects it if it differs (the correction arrives with the sync).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

Meta = tuple[tuple[int, ...], np.dtype]


def is_remote(value: Any) -> bool:
    return hasattr(value, "_handle")


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if is_remote(value) or isinstance(value, np.ndarray) else ()


@functools.lru_cache(maxsize=4096)
def _ufunc_dtype(name: str, kinds: tuple[Any, ...]) -> np.dtype:
    dummies = [np.zeros((), kind) if isinstance(kind, np.dtype) else kind() for kind in kinds]
    with np.errstate(all="ignore"):
        return np.asarray(getattr(np, name)(*dummies)).dtype


def _kind(value: Any) -> Any:
    """Arrays and NumPy scalars are typed by their dtype; Python scalars only by their kind (NEP 50)."""
    if is_remote(value) or isinstance(value, (np.ndarray, np.generic)):
        return np.dtype(value.dtype)
    if isinstance(value, (bool, int, float, complex)):
        return type(value)
    raise TypeError(f"unsupported operand type {type(value).__name__}")


def ufunc(name: str, operands: Sequence[Any], dtype: Any = None) -> Meta:
    shape = np.broadcast_shapes(*(_shape(v) for v in operands))
    if dtype is not None:
        return shape, np.dtype(dtype)
    return shape, _ufunc_dtype(name, tuple(_kind(v) for v in operands))


def normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for given in axes:
        a = int(given)
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        out.append(a % ndim)
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _reduction_dtype(name: str, dtype: np.dtype, ndim: int, extra: tuple[tuple[str, Any], ...]) -> np.dtype:
    # (a stand-in of one element: NumPy's warnings about it, like ddof past its size, are not the program's)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(getattr(np, name)(np.ones((1,) * max(ndim, 1), dtype), **dict(extra))).dtype


def reduction(name: str, array: Any, axis: Any = None, keepdims: bool = False, **extra: Any) -> Meta:
    shape = tuple(array.shape)
    axes = normalize_axis(axis, len(shape))
    if keepdims:
        out = tuple(1 if i in axes else d for i, d in enumerate(shape))
    else:
        out = tuple(d for i, d in enumerate(shape) if i not in axes)
    kept = tuple(sorted((k, v) for k, v in extra.items() if k in ("dtype", "ddof") and v is not None))
    return out, _reduction_dtype(name, np.dtype(array.dtype), len(shape), kept)


def shape_argument(shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    out = tuple(int(d) for d in dims)
    if any(d < 0 for d in out):
        raise ValueError("negative dimensions are not allowed")
    return out


def reshape(old: tuple[int, ...], new: Any) -> tuple[int, ...]:
    dims = list((new,) if isinstance(new, (int, np.integer)) else new)
    size = math.prod(old)
    unknown = [i for i, d in enumerate(dims) if d == -1]
    if len(unknown) > 1:
        raise ValueError("can only specify one unknown dimension")
    known = math.prod(int(d) for d in dims if d != -1)
    if unknown:
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape array of size {size} into shape {tuple(dims)}")
        dims[unknown[0]] = size // known
    if math.prod(dims) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {tuple(dims)}")
    return tuple(int(d) for d in dims)


def matmul(a: Any, b: Any) -> Meta:
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    dtype = _ufunc_dtype("multiply", (np.dtype(a.dtype), np.dtype(b.dtype)))
    if dtype == np.bool_:
        dtype = np.dtype(np.bool_)
    a2 = sa if len(sa) > 1 else (1, sa[0])
    b2 = sb if len(sb) > 1 else (sb[0], 1)
    if a2[-1] != b2[-2]:
        raise ValueError(
            f"matmul: Input operand 1 has a mismatch in its core dimension 0 (size {b2[-2]} is different from {a2[-1]})"
        )
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    core = (a2[-2] if len(sa) > 1 else None, b2[-1] if len(sb) > 1 else None)
    return batch + tuple(d for d in core if d is not None), dtype


def getitem(shape: tuple[int, ...], dtype: np.dtype, key: Any) -> Meta | None:
    """Index a stand-in with the same shape (zero strides: no memory); None when the result's
    shape depends on remote data (a boolean mask held by the worker)."""
    parts = key if isinstance(key, tuple) else (key,)
    stand_ins = []
    for part in parts:
        if is_remote(part):
            if part.dtype == np.bool_:
                return None
            stand_ins.append(np.zeros(part.shape, np.intp))
        else:
            stand_ins.append(part)
    base = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=shape, strides=(0,) * len(shape))
    result = base[tuple(stand_ins) if isinstance(key, tuple) else stand_ins[0]]
    return tuple(np.shape(result)), dtype


def concatenate(arrays: Sequence[Any], axis: int | None = 0) -> Meta:
    shapes = [_shape(a) for a in arrays]
    dtype = np.result_type(*(np.zeros((), a.dtype) for a in arrays))
    if axis is None:
        return (sum(math.prod(s) for s in shapes),), dtype
    first = shapes[0]
    ax = normalize_axis(axis, len(first))[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(d != e for i, (d, e) in enumerate(zip(s, first, strict=True)) if i != ax):
            raise ValueError("all the input array dimensions except for the concatenation axis must match exactly")
    return (*first[:ax], sum(s[ax] for s in shapes), *first[ax + 1 :]), dtype


def stack(arrays: Sequence[Any], axis: int = 0) -> Meta:
    shapes = {_shape(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError("all input arrays must have the same shape")
    [shape] = shapes
    ax = normalize_axis(axis, len(shape) + 1)[0]
    dtype = np.result_type(*(np.zeros((), a.dtype) for a in arrays))
    return (*shape[:ax], len(arrays), *shape[ax:]), dtype
