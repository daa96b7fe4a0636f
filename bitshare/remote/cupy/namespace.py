"""The functions of the ``cupy`` module for remote leases, built from the covered surface.

Elementwise functions and reductions know their result's shape and dtype; other functions
get it from the worker at the next sync. Anything outside :mod:`bitshare.protocol.catalog`
raises :class:`~.errors.Uncovered` (an ``AttributeError`` and a ``NotImplementedError``) naming it.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np

from ...protocol import catalog, wire
from ...protocol.v1 import bitshare_pb2 as pb
from . import dispatch, listing
from . import meta as rules
from .array import asarray, call, call_several, elementwise, matmul, ndarray, queue_op, reduce
from .errors import Uncovered
from .forward import RemoteFunction

Op = pb.ROp
ARANGE_ON_HOST = 1 << 20  # arange/linspace: the shape is worked out here below this many elements


def _ufunc(name: str) -> Callable[..., Any]:
    def function(*operands: Any, out: Any = None, dtype: Any = None, **kwargs: Any) -> Any:
        return elementwise(name, *operands, out=out, dtype=dtype, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"cupy.{name}, run by the lease's GPU worker."
    return function


def _reduction(name: str) -> Callable[..., Any]:
    def function(
        a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
    ) -> Any:
        return reduce(name, a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kw)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"cupy.{name}, run by the lease's GPU worker."
    return function


def _results(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """How many arrays ``name`` returns for these arguments."""
    fixed = catalog.MULTIPLE_RESULTS.get(name, 1)
    if fixed is not None:
        return fixed
    if name == "meshgrid":
        return len(args)
    if name == "nonzero":
        return asarray(args[0]).ndim
    if name in ("split", "array_split"):
        sections = args[1] if len(args) > 1 else kwargs.get("indices_or_sections")
        return int(sections) if isinstance(sections, (int, np.integer)) else len(sections) + 1
    if name == "unique":
        flags = ("return_index", "return_inverse", "return_counts")
        return 1 + sum(bool(kwargs.get(flag)) for flag in flags)
    raise AssertionError(f"no result count for {name}")


def _function(name: str) -> Callable[..., Any]:
    def function(*args: Any, **kwargs: Any) -> Any:
        if name in catalog.MULTIPLE_RESULTS:
            results = call_several(name, _results(name, args, kwargs), *args, **kwargs)
            if name in ("meshgrid", "split", "array_split"):
                return list(results)
            if len(results) == 1 and name != "nonzero":  # unique without its flags gives one array
                return results[0]
            return results
        return call(name, *args, **kwargs)

    function.__name__ = function.__qualname__ = name.rpartition(".")[2]
    function.__doc__ = f"cupy.{name}, run by the lease's GPU worker."
    return function


# ----- creation, with known shapes ------------------------------------------------------------


def empty(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return call("empty", rules.shape_argument(shape), dtype, meta=(rules.shape_argument(shape), np.dtype(dtype)))


def zeros(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return call("zeros", rules.shape_argument(shape), dtype, meta=(rules.shape_argument(shape), np.dtype(dtype)))


def ones(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return call("ones", rules.shape_argument(shape), dtype, meta=(rules.shape_argument(shape), np.dtype(dtype)))


def full(shape: Any, fill_value: Any, dtype: Any = None, order: str = "C") -> ndarray:
    kind = np.full((), fill_value if not isinstance(fill_value, ndarray) else 0, dtype).dtype
    return call("full", rules.shape_argument(shape), fill_value, dtype, meta=(rules.shape_argument(shape), kind))


def _like(name: str) -> Callable[..., ndarray]:
    def function(a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None) -> ndarray:
        prototype = asarray(a)
        out_shape = rules.shape_argument(shape) if shape is not None else prototype.shape
        kwargs = {k: v for k, v in (("dtype", dtype), ("shape", shape)) if v is not None}
        return call(
            name, prototype, meta=(out_shape, np.dtype(dtype) if dtype is not None else prototype.dtype), **kwargs
        )

    function.__name__ = name
    return function


empty_like, zeros_like, ones_like = _like("empty_like"), _like("zeros_like"), _like("ones_like")


def full_like(
    a: Any, fill_value: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None
) -> ndarray:
    prototype = asarray(a)
    out_shape = rules.shape_argument(shape) if shape is not None else prototype.shape
    kwargs = {k: v for k, v in (("dtype", dtype), ("shape", shape)) if v is not None}
    return call("full_like", prototype, fill_value, meta=(out_shape, np.dtype(dtype or prototype.dtype)), **kwargs)


def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> ndarray:
    if dtype is not None:
        wire.cupy_dtype(dtype)  # CuPy's refusal, before NumPy's own on the host
    if stop is None:  # arange(stop) and arange(stop, step=...), as NumPy and CuPy read them
        start, stop = 0, start
    args = [start, stop] if step is None else [start, stop, step]
    found = None
    bounds = (start, stop)
    if (bounds[1] - bounds[0]) / (step or 1) <= ARANGE_ON_HOST:
        host = np.arange(*args, dtype=dtype)
        found = (host.shape, host.dtype)
    return call("arange", *args, meta=found, **({"dtype": dtype} if dtype is not None else {}))


def linspace(
    start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False, dtype: Any = None, axis: int = 0
) -> Any:
    if retstep:
        raise NotImplementedError("cupy.linspace(retstep=True) is not supported by bitshare's remote CuPy")
    if dtype is not None:
        wire.cupy_dtype(dtype)
    found = None
    if num <= ARANGE_ON_HOST and not isinstance(start, ndarray) and not isinstance(stop, ndarray):
        host = np.linspace(start, stop, num, endpoint=endpoint, dtype=dtype)
        found = (host.shape, host.dtype)
    kwargs = {"endpoint": endpoint, **({"dtype": dtype} if dtype is not None else {})}
    return call("linspace", start, stop, num, meta=found, **kwargs)


def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = float, order: str = "C") -> ndarray:
    return call("eye", N, M, k, dtype, meta=((int(N), int(M if M is not None else N)), np.dtype(dtype)))


def identity(n: int, dtype: Any = float) -> ndarray:
    return call("identity", n, dtype, meta=((int(n), int(n)), np.dtype(dtype)))


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", ndmin: int = 0) -> ndarray:
    if isinstance(obj, ndarray):
        if not copy and (dtype is None or np.dtype(dtype) == obj.dtype):
            return obj
        return obj.astype(dtype) if dtype is not None else obj.copy()
    return asarray(np.array(obj, dtype=dtype, ndmin=ndmin))


def ascontiguousarray(a: Any, dtype: Any = None) -> ndarray:
    remote = asarray(a, dtype)
    return call("ascontiguousarray", remote, meta=(remote.shape, remote.dtype))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
    """``cupy.asnumpy``: the array on the host (a sync point)."""
    if isinstance(a, ndarray):
        return a.get(out=out)
    return np.asarray(a, order=order)


def get_array_module(*args: Any) -> types.ModuleType:
    import sys

    if any(isinstance(a, ndarray) for a in args):
        return sys.modules["cupy"] if "cupy" in sys.modules else sys.modules[__name__.rpartition(".")[0]]
    return np


# ----- combining, with known shapes --------------------------------------------------------------


def concatenate(arrays: Any, axis: int | None = 0, out: Any = None, dtype: Any = None) -> ndarray:
    remote = [asarray(a) for a in arrays]
    return call("concatenate", remote, meta=rules.concatenate(remote, axis), axis=axis)


def stack(arrays: Any, axis: int = 0, out: Any = None) -> ndarray:
    remote = [asarray(a) for a in arrays]
    return call("stack", remote, meta=rules.stack(remote, axis), axis=axis)


def dot(a: Any, b: Any, out: Any = None) -> ndarray:
    a, b = asarray(a), asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        return elementwise("multiply", a, b, out=out)
    if a.ndim <= 2 and b.ndim <= 2:
        return call("dot", a, b, meta=rules.matmul(a, b), **({"out": out} if out is not None else {}))
    return call("dot", a, b)


def where(condition: Any, x: Any = None, y: Any = None) -> Any:
    if x is None and y is None:
        return _function("nonzero")(condition)
    shape = np.broadcast_shapes(*(np.shape(v) if not isinstance(v, ndarray) else v.shape for v in (condition, x, y)))
    dtype = (
        rules.ufunc("add", [x, y])[1]
        if all(isinstance(v, (ndarray, np.ndarray, np.generic, int, float, complex)) for v in (x, y))
        else None
    )
    return call("where", condition, x, y, meta=(shape, dtype) if dtype is not None else None)


def fuse(*args: Any, **kwargs: Any) -> Any:
    """``cupy.fuse``: the function runs as it is written, one operation after another."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda function: function


# ----- everything else of the surface ---------------------------------------------------------------

_SPECIAL = {
    "empty": empty,
    "zeros": zeros,
    "ones": ones,
    "full": full,
    "empty_like": empty_like,
    "zeros_like": zeros_like,
    "ones_like": ones_like,
    "full_like": full_like,
    "arange": arange,
    "linspace": linspace,
    "eye": eye,
    "identity": identity,
    "array": array,
    "asarray": asarray,
    "ascontiguousarray": ascontiguousarray,
    "concatenate": concatenate,
    "stack": stack,
    "dot": dot,
    "matmul": matmul,
    "where": where,
}

TOP: dict[str, Any] = {}
for _name in catalog.UNARY_UFUNCS + catalog.BINARY_UFUNCS:
    TOP[_name] = RemoteFunction(_name, _ufunc(_name))
for _name in catalog.REDUCTIONS:
    TOP[_name] = RemoteFunction(_name, _reduction(_name))
for _name in catalog.FUNCTIONS:
    TOP[_name] = RemoteFunction(_name, _SPECIAL.get(_name) or _function(_name))
TOP.update(asnumpy=asnumpy, get_array_module=get_array_module, fuse=fuse, ndarray=ndarray)


def attributes(module: types.ModuleType, prefix: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module's ``__getattr__`` and ``__dir__``: the worker's other functions, made at their
    first use and kept on the module; anything else is :class:`Uncovered`."""
    where = catalog.module_name(prefix)

    def getattr_(name: str) -> Any:
        if name == "__all__":  # (``from cupy import *``: the worker's functions too, made as they are named)
            return [n for n in dir_() if not n.startswith("_")]
        if name.startswith("__"):
            raise AttributeError(name)
        qualified = f"{prefix}.{name}" if prefix else name
        found = listing.listing(prefix)
        if found is None or found.entry(qualified) is None:
            on = "the GPU server's library" if found is not None else "the functions covered without a session"
            raise Uncovered(
                f"{where}.{name} is not supported by bitshare's remote CuPy: not among {on} (see docs/remote.md)"
            )
        function = RemoteFunction(qualified)
        setattr(module, name, function)
        return function

    def dir_() -> list[str]:
        found = listing.listing(prefix) if listing.available() else None
        return sorted(set(vars(module)) | set(found.names() if found is not None else ()))

    return getattr_, dir_


def submodule(prefix: str, names: list[str]) -> types.ModuleType:
    name = catalog.module_name(prefix)
    module = types.ModuleType(name, f"{name} for remote leases (bitshare).")
    for function in names:
        setattr(module, function, RemoteFunction(f"{prefix}.{function}", _function(f"{prefix}.{function}")))
    module.__getattr__, module.__dir__ = attributes(module, prefix)  # type: ignore[method-assign]
    return module


linalg = submodule("linalg", catalog.LINALG)
linalg.LinAlgError = np.linalg.LinAlgError
fft = submodule("fft", catalog.FFT)
random = submodule("random", catalog.RANDOM)
random.seed = RemoteFunction(  # type: ignore[attr-defined]
    "random.seed", lambda seed=None: queue_op(Op.KIND_CALL, "random.seed", [seed], {}, [])
)
# cupyx.scipy's modules: the worker's functions alone (on a simulated GPU, SciPy's, where installed).
SCIPY = {prefix: submodule(prefix, []) for prefix in catalog.SUBMODULES if prefix.startswith("cupyx.")}


def _package(name: str, children: dict[str, types.ModuleType]) -> types.ModuleType:
    """``cupyx`` and ``cupyx.scipy``: the forwarded modules under them, and nothing else."""
    package = types.ModuleType(name, f"{name} for remote leases (bitshare): {', '.join(children)}.")
    for child, module in children.items():
        setattr(package, child.rpartition(".")[2], module)
    package.__getattr__ = _missing(name)  # type: ignore[method-assign]
    return package


def _missing(where: str) -> Callable[[str], Any]:
    def missing(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise Uncovered(f"{where}.{name} is not supported by bitshare's remote CuPy (see docs/remote.md)")

    return missing


CUPYX_SCIPY = _package("cupyx.scipy", SCIPY)
CUPYX = _package("cupyx", {"cupyx.scipy": CUPYX_SCIPY})


def lookup(module: str, name: str) -> Callable[..., Any] | None:
    """Our version of the NumPy function ``module.name`` (for ``__array_function__``), if covered."""
    if module.startswith("numpy.linalg"):
        return getattr(linalg, name, None)
    if module.startswith("numpy.fft"):
        return getattr(fft, name, None)
    if module.startswith("numpy.random"):
        return getattr(random, name, None)
    if module.startswith("scipy.special"):
        return getattr(SCIPY["cupyx.scipy.special"], name, None)
    found = TOP.get(name)
    if found is not None or not module.startswith("numpy"):
        return found
    import sys

    return getattr(sys.modules[__name__.rpartition(".")[0]], name, None)


dispatch.register(lookup)
