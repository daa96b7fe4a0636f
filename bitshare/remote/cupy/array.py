"""``cupy.ndarray`` for remote leases: a handle to an array held by the lease's worker.

Every operation is queued with the handles the client chose for its results; shape and
dtype come from :mod:`.meta` where the rules fix them, else from the worker at the next
sync. Reading data (``get()``, ``float(x)``, ``print(x)``) is a sync point.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ...protocol import catalog, wire
from ...protocol.v1 import bitshare_pb2 as pb
from ..session import Session, session
from . import dispatch, errors
from . import meta as rules
from .array_api import ArrayAPI
from .operators import INPLACE_UFUNC, Operators

Op = pb.ROp
Meta = rules.Meta


class ndarray(ArrayAPI, Operators):
    """An array on the leased GPU (held by the remote worker)."""

    __slots__ = ("__weakref__", "_dtype", "_handle", "_session", "_shape")
    __array_priority__ = 100.0

    def __init__(self, owner: Session, handle: int, meta: Meta | None) -> None:
        self._session = owner
        self._handle = handle
        self._shape, self._dtype = meta if meta is not None else (None, None)
        if meta is None:
            owner.expect_meta(handle, self)

    def __del__(self) -> None:
        owner = getattr(self, "_session", None)
        if owner is not None and not owner.closed:
            known = getattr(self, "_shape", None) is not None and getattr(self, "_dtype", None) is not None
            owner.free(self._handle, math.prod(self._shape) * self._dtype.itemsize if known else None)

    def _set_meta(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._shape, self._dtype = shape, dtype

    def _meta(self) -> Meta:
        if self._shape is None:
            self._session.sync()
        if self._shape is None or self._dtype is None:  # the worker never made it
            if self._session.is_lost(self._handle):
                raise errors.ArrayLost(self._session.lost_message())
            raise ValueError(
                "this array was not made: an operation queued before it failed (the error was raised "
                "at an earlier sync)"
            )
        return self._shape, self._dtype

    # ----- attributes -----------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self._meta()[0]

    @shape.setter
    def shape(self, value: Any) -> None:
        """``x.shape = s``: the worker's array under this handle becomes its reshape (a view, where
        the library can make one)."""
        new = rules.reshape(self.shape, value)
        owner = self._session
        expect = [wire.meta_pb(new, self.dtype)]
        owner.queue(make_op(owner, Op.KIND_METHOD, "reshape", [self, new], {}, [self._handle], expect))
        self._shape = new

    @property
    def dtype(self) -> np.dtype:
        return self._meta()[1]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def strides(self) -> tuple[int, ...]:
        """As if C-contiguous (the worker may hold a view with other strides)."""
        strides, step = [], self.itemsize
        for dim in reversed(self.shape):
            strides.append(step)
            step *= max(dim, 1)
        return tuple(reversed(strides))

    @property
    def T(self) -> ndarray:
        return self.transpose()

    @property
    def real(self) -> ndarray:
        return call("real", self)

    @property
    def imag(self) -> ndarray:
        return call("imag", self)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self) -> Iterator[ndarray]:
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    # ----- data in and out (sync points) ---------------------------------------------------

    def get(self, stream: Any = None, order: str = "C", out: np.ndarray | None = None) -> np.ndarray:
        """Copy the array to the host (a sync point)."""
        known = (self._shape, self._dtype) if self._shape is not None else None
        host = self._session.download(self._handle, known)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, array: Any, stream: Any = None) -> None:
        """Copy a host array into this array (same shape)."""
        host = np.asarray(array)
        if host.shape != self.shape:
            raise ValueError(f"shape mismatch: {host.shape} != {self.shape}")
        self[...] = host

    def item(self) -> Any:
        self._session.queue(Op(kind=Op.KIND_QUERY, name="item", args=[pb.RValue(handle=self._handle)]))
        result, _ = self._session.sync()
        return wire.decode(result.values[-1], lambda _h: None)

    def tolist(self) -> Any:
        return self.get().tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        host = self.get()
        return host.astype(dtype) if dtype is not None else host

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iu" or self.size != 1:
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self.item())

    def __repr__(self) -> str:
        return repr(self.get())

    def __str__(self) -> str:
        return str(self.get())

    def __format__(self, spec: str) -> str:
        return format(self.get()[()] if self.ndim == 0 else self.get(), spec)

    # ----- indexing -----------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> ndarray:
        shape, dtype = self._meta()
        found = rules.getitem(shape, dtype, key)
        return queue_op(Op.KIND_GETITEM, "__getitem__", [self, key], {}, [found])[0]

    def __setitem__(self, key: Any, value: Any) -> None:
        queue_op(Op.KIND_SETITEM, "__setitem__", [self, key, value], {}, [])

    # ----- methods --------------------------------------------------------------------------------

    def astype(self, dtype: Any, copy: bool = True, **kwargs: Any) -> ndarray:
        return method(self, "astype", dtype, meta=(self.shape, np.dtype(dtype)), copy=copy, **kwargs)

    def copy(self, order: str = "C") -> ndarray:
        return method(self, "copy", meta=self._meta())

    def reshape(self, *shape: Any, order: str = "C") -> ndarray:
        new = shape[0] if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)) else shape
        return method(self, "reshape", tuple(new), meta=(rules.reshape(self.shape, new), self.dtype))

    def ravel(self, order: str = "C") -> ndarray:
        return method(self, "ravel", meta=((self.size,), self.dtype))

    def flatten(self, order: str = "C") -> ndarray:
        return method(self, "flatten", meta=((self.size,), self.dtype))

    def transpose(self, *axes: Any) -> ndarray:
        order = tuple(axes[0]) if len(axes) == 1 and axes[0] is not None and not isinstance(axes[0], int) else axes
        shape = self.shape
        perm = (
            tuple(int(a) % len(shape) for a in order)
            if order and order != (None,)
            else tuple(reversed(range(len(shape))))
        )
        return method(
            self,
            "transpose",
            *([perm] if order and order != (None,) else []),
            meta=(tuple(shape[i] for i in perm), self.dtype),
        )

    def fill(self, value: Any) -> None:
        queue_op(Op.KIND_METHOD, "fill", [self, value], {}, [])

    def sort(self, axis: int = -1, **kwargs: Any) -> None:
        queue_op(Op.KIND_METHOD, "sort", [self], {"axis": axis, **kwargs}, [])

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(catalog.METHODS))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in catalog.METHODS:
            if name in catalog.REDUCTIONS:
                return lambda *args, **kwargs: reduce(name, self, *args, **kwargs)
            return lambda *args, **kwargs: method(self, name, *args, **kwargs)
        found = dispatch.array_method(self, name)
        if found is None:
            raise errors.Uncovered(f"cupy.ndarray.{name} is not supported by bitshare's remote CuPy")
        return found

    # ----- NumPy interoperability ---------------------------------------------------------------

    def __array_ufunc__(self, ufunc: np.ufunc, how: str, *inputs: Any, **kwargs: Any) -> Any:
        if how != "__call__":
            return NotImplemented
        if catalog.has_rules(ufunc.__name__):
            return elementwise(ufunc.__name__, *inputs, **kwargs)
        # (the worker's, by name: NumPy's ufuncs in cupy, SciPy's in cupyx.scipy.special, as CuPy's are)
        target = dispatch.numpy_function("numpy", ufunc.__name__) or dispatch.numpy_function(
            "scipy.special", ufunc.__name__
        )
        return NotImplemented if target is None else target(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        target = dispatch.numpy_function(func.__module__, func.__name__)
        if target is None:
            return NotImplemented
        if target is func:  # NumPy's own, as cupy's is (result_type, can_cast): it reads dtypes alone
            return func(*(a.dtype if isinstance(a, ndarray) else a for a in args), **kwargs)
        return target(*args, **kwargs)

    # ----- the hooks of the operators (operators.py) ----------------------------------------------

    def _ufunc(self, name: str, *operands: Any) -> Any:
        return elementwise(name, *operands)

    def _matmul(self, a: Any, b: Any) -> Any:
        return matmul(a, b)

    def _inplace(self, name: str, other: Any) -> ndarray:
        ufunc = INPLACE_UFUNC[name]
        shape, dtype = rules.ufunc(ufunc, [self, other])
        if shape != self.shape:
            raise ValueError(f"non-broadcastable output operand with shape {self.shape} doesn't match {shape}")
        if not np.can_cast(dtype, self.dtype, "same_kind"):  # (raised at its line, as NumPy and CuPy do)
            raise TypeError(
                f"Cannot cast ufunc '{ufunc}' output from {dtype!r} to {self.dtype!r} with casting rule 'same_kind'"
            )
        queue_op(Op.KIND_METHOD, name, [self, other], {}, [])
        return self


# ----- queueing operations ---------------------------------------------------------------------


def operand(owner: Session, value: Any) -> Any:
    """Host arrays too large to travel inline are uploaded first (in chunks)."""
    if isinstance(value, np.ndarray) and value.nbytes > wire.INLINE_LIMIT:
        return upload(value, owner)
    if isinstance(value, (list, tuple)):
        items = [operand(owner, v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def handle_of(value: Any) -> int | None:
    """The worker's handle of a remote array; None for anything else (how ``wire.encode`` tells them apart)."""
    return value._handle if isinstance(value, ndarray) else None


def queue_op(
    kind: int,
    name: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    metas: Sequence[Meta | None],
    results: str = "",
) -> list[ndarray]:
    """Queue one operation on the session, with a new array for each expected result, and return those.
    ``results``: the form a function of the worker's surface returns them in (``ROp.results``)."""
    for found in metas:
        if found is not None:
            wire.cupy_dtype(found[1])  # refused here, as CuPy refuses it, before anything is queued
    owner = session()
    arrays = [ndarray(owner, owner.new_handle(), m) for m in metas]
    expect = [wire.meta_pb(*m) if m is not None else pb.RMeta() for m in metas]
    owner.queue(make_op(owner, kind, name, args, kwargs, [r._handle for r in arrays], expect, results))
    return arrays


def make_op(
    owner: Session,
    kind: int,
    name: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    out: list[int],
    expect: list[pb.RMeta] | None = None,
    results: str = "",
) -> pb.ROp:
    """The operation on the wire: large host arrays among the arguments are uploaded first."""
    if kwargs.get("dtype") is not None:
        wire.cupy_dtype(kwargs["dtype"])  # (a result the worker will describe: refused all the same)
    args = [operand(owner, a) for a in args]
    kwargs = {k: operand(owner, v) for k, v in kwargs.items()}
    return Op(
        kind=kind,
        name=name,
        args=[wire.encode(a, handle_of) for a in args],
        kwargs={k: wire.encode(v, handle_of) for k, v in kwargs.items()},
        out=out,
        expect=expect or [],
        results=results,
    )


def upload(array: np.ndarray, owner: Session | None = None) -> ndarray:
    owner = owner or session()
    host = wire.contiguous(wire.native(np.asarray(array)))
    wire.cupy_dtype(host.dtype)
    result = ndarray(owner, owner.new_handle(), (host.shape, host.dtype))
    owner.upload(result._handle, host)
    return result


def call(name: str, *args: Any, meta: Meta | None = None, **kwargs: Any) -> ndarray:
    """A function of the covered surface, with one result."""
    return queue_op(Op.KIND_CALL, name, args, kwargs, [meta])[0]


def call_several(name: str, count: int, *args: Any, **kwargs: Any) -> tuple[ndarray, ...]:
    return tuple(queue_op(Op.KIND_CALL, name, args, kwargs, [None] * count))


def method(array: ndarray, name: str, *args: Any, meta: Meta | None = None, **kwargs: Any) -> ndarray:
    return queue_op(Op.KIND_METHOD, name, [array, *args], kwargs, [meta])[0]


def elementwise(name: str, *operands: Any, out: Any = None, dtype: Any = None, **kwargs: Any) -> Any:
    if dtype is not None:
        kwargs["dtype"] = dtype
    if out is not None:
        target = out[0] if isinstance(out, tuple) else out
        queue_op(Op.KIND_CALL, name, operands, {**kwargs, "out": target}, [])
        return target
    return call(name, *operands, meta=rules.ufunc(name, operands, dtype) if _known(operands) else None, **kwargs)


def reduce(
    name: str, array: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kwargs: Any
) -> ndarray:
    if not isinstance(array, ndarray):
        array = asarray(array)
    extra = {"dtype": dtype, **({"ddof": kwargs["ddof"]} if "ddof" in kwargs else {})}
    meta = rules.reduction(name, array, axis, keepdims, **extra) if _known([array]) else None
    if axis is not None:
        kwargs["axis"] = axis
    if dtype is not None:
        kwargs["dtype"] = dtype
    if keepdims:
        kwargs["keepdims"] = True
    if out is not None:
        queue_op(Op.KIND_CALL, name, [array], {**kwargs, "out": out}, [])
        return out
    return call(name, array, meta=meta, **kwargs)


def matmul(a: Any, b: Any, out: Any = None) -> ndarray:
    a, b = asarray(a), asarray(b)
    if out is not None:
        queue_op(Op.KIND_CALL, "matmul", [a, b], {"out": out}, [])
        return out
    return call("matmul", a, b, meta=rules.matmul(a, b) if _known([a, b]) else None)


def _known(operands: Sequence[Any]) -> bool:
    """Every remote operand's meta is known here. Where one's is not yet (the worker tells it at
    the next sync), the result's is not worked out either: the operation is queued, not waited for,
    and a shape that does not fit is the worker's error at the next sync."""
    return all(o._shape is not None for o in operands if isinstance(o, ndarray))


def asarray(
    value: Any, dtype: Any = None, order: Any = None, *, copy: bool | None = None, blocking: bool = False
) -> ndarray:
    """A remote array of ``value`` (a remote array is returned as it is, cast, or copied with
    ``copy=True``). ``copy=False`` where a copy cannot be avoided (a cast, host data) is the
    ValueError NumPy and the Array API give."""
    if isinstance(value, ndarray):
        cast = dtype is not None and np.dtype(dtype) != value.dtype
        if cast and copy is False:
            raise ValueError("Unable to avoid copy while creating an array as requested.")
        if cast:
            return value.astype(dtype)
        return value.copy() if copy else value
    if copy is False:
        raise ValueError("Unable to avoid copy while creating an array as requested (host data goes to the GPU).")
    host = wire.native(np.asarray(value, dtype=dtype))
    wire.cupy_dtype(host.dtype)
    if host.nbytes <= wire.INLINE_LIMIT:
        return call("asarray", host, meta=(host.shape, host.dtype))
    return upload(host)
