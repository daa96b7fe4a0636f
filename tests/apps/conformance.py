"""The remote CuPy's covered surface against NumPy: each case runs with ``cupy`` (bitshare's, under
``bitshare run --remote``, or real CuPy on a GPU) and with NumPy, and must agree in shape, dtype,
values and raised exception type. Prints one JSON line per failure, then a summary line.

Besides the hand-written cases, every function of the modules below that ``cupy`` lists (the
worker's library, for bitshare's) and NumPy (or SciPy) also has, and whose required arguments are
all arrays by their names, is called with small arrays (``--sample N``: N of them, by ``--seed``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import random
import sys
import traceback
from collections.abc import Callable
from typing import Any

import cupy
import numpy as np

Case = tuple[str, Callable[[Any], Any]]


def data(xp: Any) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    host = {
        "a": rng.standard_normal((4, 5)).astype(np.float32),
        "b": rng.standard_normal((5, 3)).astype(np.float32),
        "v": rng.standard_normal(5),
        "i": np.arange(20, dtype=np.int64).reshape(4, 5),
        "m": rng.standard_normal((6, 6)) + 6 * np.eye(6),
        "s": rng.standard_normal(64),
    }
    return {k: xp.asarray(v) for k, v in host.items()}


def cases() -> list[Case]:
    out: list[Case] = []

    def case(name: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
        def add(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
            out.append((name, function))
            return function

        return add

    for ufunc in ("exp", "sqrt", "abs", "negative", "sin", "tanh", "floor", "sign", "isnan", "square", "log1p"):
        out.append((ufunc, lambda xp, u=ufunc: getattr(xp, u)(xp.abs(data(xp)["a"]))))
    for ufunc in (
        "add",
        "subtract",
        "multiply",
        "true_divide",
        "maximum",
        "minimum",
        "power",
        "less",
        "equal",
        "arctan2",
    ):
        out.append((ufunc, lambda xp, u=ufunc: getattr(xp, u)(data(xp)["a"], data(xp)["a"][0])))
    for reduction in ("sum", "prod", "mean", "std", "var", "max", "min", "argmax", "argmin", "all", "any"):
        out.append((reduction, lambda xp, r=reduction: getattr(xp, r)(data(xp)["a"])))
        out.append((f"{reduction} axis=0", lambda xp, r=reduction: getattr(xp, r)(data(xp)["a"], axis=0)))
        out.append((f"{reduction} keepdims", lambda xp, r=reduction: getattr(data(xp)["a"], r)(axis=1, keepdims=True)))

    case("python scalar keeps float32")(lambda xp: data(xp)["a"] * 2.5 + 1)
    case("int array and float scalar")(lambda xp: data(xp)["i"] / 3)
    case("int array floor division")(lambda xp: data(xp)["i"] // 3 % 4)
    case("comparison chain")(lambda xp: (data(xp)["a"] > 0) & (data(xp)["a"] < 1))
    case("unary operators")(lambda xp: -abs(data(xp)["a"]) + (+data(xp)["a"]))
    case("reverse operators")(lambda xp: 1 - data(xp)["a"] / (2 + data(xp)["a"] ** 2))
    case("matmul")(lambda xp: data(xp)["a"] @ data(xp)["b"])
    case("matmul vector")(lambda xp: data(xp)["a"] @ data(xp)["v"].astype(np.float32))
    case("dot")(lambda xp: xp.dot(data(xp)["a"], data(xp)["b"]))
    case("dot vectors")(lambda xp: xp.dot(data(xp)["v"], data(xp)["v"]))
    case("einsum")(lambda xp: xp.einsum("ij,jk->ik", data(xp)["a"], data(xp)["b"]))
    case("outer")(lambda xp: xp.outer(data(xp)["v"], data(xp)["v"]))
    case("transpose T")(lambda xp: data(xp)["a"].T)
    case("reshape -1")(lambda xp: data(xp)["i"].reshape(2, -1))
    case("ravel")(lambda xp: data(xp)["i"].ravel())
    case("astype")(lambda xp: data(xp)["a"].astype(np.float64))
    case("copy")(lambda xp: data(xp)["a"].copy())
    case("slice")(lambda xp: data(xp)["i"][1:3, ::2])
    case("negative index")(lambda xp: data(xp)["i"][-1])
    case("element")(lambda xp: data(xp)["i"][2, 3])
    case("newaxis and ellipsis")(lambda xp: data(xp)["i"][None, ..., 1])
    case("integer array index")(lambda xp: data(xp)["i"][xp.asarray([0, 2, 3])])
    case("boolean mask")(lambda xp: data(xp)["a"][data(xp)["a"] > 0])
    case("setitem slice")(lambda xp: _set(data(xp)["a"], (slice(1, 3), 2), 7.0))
    case("setitem mask")(lambda xp: _set(data(xp)["a"], data(xp)["a"] < 0, 0.0))
    case("inplace add")(lambda xp: _iadd(data(xp)["a"], data(xp)["a"][0]))
    case("concatenate")(lambda xp: xp.concatenate([data(xp)["a"], data(xp)["a"]], axis=1))
    case("stack")(lambda xp: xp.stack([data(xp)["v"], data(xp)["v"]], axis=1))
    case("vstack")(lambda xp: xp.vstack([data(xp)["a"], data(xp)["a"]]))
    case("where")(lambda xp: xp.where(data(xp)["a"] > 0, data(xp)["a"], 0))
    case("clip")(lambda xp: xp.clip(data(xp)["a"], -0.5, 0.5))
    case("cumsum")(lambda xp: xp.cumsum(data(xp)["i"], axis=1))
    case("sort")(lambda xp: xp.sort(data(xp)["a"], axis=0))
    case("argsort")(lambda xp: xp.argsort(data(xp)["v"]))
    case("unique")(lambda xp: xp.unique(data(xp)["i"] % 3))
    case("zeros")(lambda xp: xp.zeros((3, 2), dtype=np.int32))
    case("ones_like")(lambda xp: xp.ones_like(data(xp)["a"]))
    case("full")(lambda xp: xp.full((2, 2), 3.5))
    case("arange")(lambda xp: xp.arange(3, 17, 2))
    case("linspace")(lambda xp: xp.linspace(0, 1, 11))
    case("eye")(lambda xp: xp.eye(3, 4, k=1))
    case("diag")(lambda xp: xp.diag(data(xp)["m"]))
    case("tril")(lambda xp: xp.tril(data(xp)["m"]))
    case("linalg.norm")(lambda xp: xp.linalg.norm(data(xp)["m"]))
    case("linalg.inv")(lambda xp: xp.linalg.inv(data(xp)["m"]))
    case("linalg.solve")(lambda xp: xp.linalg.solve(data(xp)["m"], data(xp)["m"][0]))
    case("linalg.det")(lambda xp: xp.linalg.det(data(xp)["m"]))
    case("linalg.qr r")(lambda xp: abs(xp.linalg.qr(data(xp)["m"])[1]))
    case("linalg.eigh values")(lambda xp: xp.linalg.eigh(data(xp)["m"] + data(xp)["m"].T)[0])
    case("linalg.svd values")(lambda xp: xp.linalg.svd(data(xp)["m"], compute_uv=False))
    case("fft.fft")(lambda xp: xp.fft.fft(data(xp)["s"]))
    case("fft.rfft")(lambda xp: xp.fft.rfft(data(xp)["s"]))
    case("fft.irfft")(lambda xp: xp.fft.irfft(xp.fft.rfft(data(xp)["s"])))
    case("fft.fft2")(lambda xp: xp.fft.fft2(data(xp)["m"]))
    case("fft.fftfreq")(lambda xp: xp.fft.fftfreq(8))
    case("float()")(lambda xp: float(data(xp)["a"].sum()))
    case("int() and bool()")(lambda xp: (int(data(xp)["i"].max()), bool(data(xp)["i"].any())))
    case("item")(lambda xp: data(xp)["i"][1, 1].item())
    case("len and iteration")(lambda xp: [float(row.sum()) for row in data(xp)["a"]] + [len(data(xp)["a"])])
    case("tolist")(lambda xp: data(xp)["i"].tolist())
    case("numpy ufunc on an array")(lambda xp: np.exp(data(xp)["a"]))
    case("numpy function on an array")(lambda xp: np.sum(data(xp)["a"], axis=1))
    # Errors: the same exception types as NumPy (and CuPy).
    case("matmul shapes")(lambda xp: data(xp)["a"] @ data(xp)["a"])
    case("broadcast shapes")(lambda xp: data(xp)["a"] + data(xp)["b"])
    case("index out of range")(lambda xp: data(xp)["i"][9])
    case("axis out of range")(lambda xp: data(xp)["a"].sum(axis=3))
    case("singular matrix")(lambda xp: xp.linalg.inv(xp.zeros((3, 3))))
    case("bad reshape")(lambda xp: data(xp)["i"].reshape(3, 7))
    return out


# module of cupy (as a path from it) -> the module of the reference with the same functions
DERIVED_MODULES = {
    "": "numpy",
    "linalg": "numpy.linalg",
    "fft": "numpy.fft",
    "cupyx.scipy.special": "scipy.special",
    "cupyx.scipy.ndimage": "scipy.ndimage",
    "cupyx.scipy.signal": "scipy.signal",
}
# parameters that take arrays, by their names in NumPy, SciPy and CuPy
ARRAY_NAMES = frozenset(
    {"x", "x1", "x2", "a", "b", "a1", "a2", "arr", "ary", "array", "input", "m", "y", "v", "ar", "ar1", "ar2"}
    | {"data", "u", "z", "p", "q"}
)
SKIPPED = frozenset(
    [
        *("empty", "empty_like", "random", "shuffle", "permutation"),  # no values to compare
        *("ndim", "shape", "size", "isscalar", "iterable", "asnumpy", "get_array_module"),  # client-side answers
    ]
)


def derived_cases() -> list[Case]:
    """Each function the two sides share whose required parameters are all arrays by name."""
    out: list[Case] = []
    for path, reference in DERIVED_MODULES.items():
        try:
            theirs = importlib.import_module(reference)
            ours = importlib.import_module(f"cupy.{path}" if path and not path.startswith("cupyx") else path or "cupy")
        except ImportError:
            continue
        for name in sorted(set(dir(ours)) & set(dir(theirs))):
            if name.startswith("_") or name in SKIPPED:
                continue
            arity = _array_arity(getattr(ours, name, None))
            if arity is not None and callable(getattr(theirs, name, None)):
                label = f"{path}.{name}" if path else name
                out.append((label, lambda xp, p=path, n=name, k=arity: _call(xp, p, n, k)))
    return out


def _array_arity(function: Any) -> int | None:
    """How many arrays the function's required parameters take, if that is all they take."""
    if not callable(function) or isinstance(function, type):
        return None
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    required = [
        p
        for p in parameters
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if not required or len(required) > 2 or any(p.name not in ARRAY_NAMES for p in required):
        return None
    return len(required)


def _call(xp: Any, path: str, name: str, arity: int) -> Any:
    if xp is np:
        module = importlib.import_module(DERIVED_MODULES[path])
    else:
        module = cupy if not path else importlib.import_module(path if path.startswith("cupyx") else f"cupy.{path}")
    rng = np.random.default_rng(7)
    square = rng.uniform(0.1, 0.9, (4, 4)) + (4 * np.eye(4) if path == "linalg" else 0)
    operands = [xp.asarray(square), xp.asarray(square.T * 0.5 + 0.2)][:arity]
    return getattr(module, name)(*operands)


def _set(array: Any, key: Any, value: Any) -> Any:
    array[key] = value
    return array


def _iadd(array: Any, other: Any) -> Any:
    array += other
    return array


def host(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        items = [host(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return cupy.asnumpy(value) if isinstance(value, cupy.ndarray) else value


def compare(name: str, function: Callable[[Any], Any]) -> str | None:
    try:
        expected: Any = function(np)
        want_error = None
    except Exception as exc:
        want_error = exc
    try:
        got = host(function(cupy))
        got_error = None
    except Exception as exc:
        got_error = exc
    if want_error is not None or got_error is not None:
        if want_error is None or got_error is None:
            return f"raised {got_error!r}, NumPy {want_error!r}"
        if not isinstance(got_error, type(want_error)):
            return f"raised {type(got_error).__name__}, NumPy raised {type(want_error).__name__}"
        return None
    if isinstance(expected, (str, bool, type(None), np.dtype)):
        return None if got == expected else f"{got!r} != {expected!r}"
    if isinstance(expected, tuple) and any(isinstance(e, np.ndarray) for e in expected):
        if not isinstance(got, tuple) or len(got) != len(expected):
            return f"{type(got).__name__} of {len(got)}, NumPy a tuple of {len(expected)}"
        if hasattr(expected, "_fields") and getattr(got, "_fields", None) != expected._fields:
            return f"fields {getattr(got, '_fields', None)}, NumPy {expected._fields}"
        problems = [compare_arrays(g, e) for g, e in zip(got, expected, strict=True)]
        return next((p for p in problems if p is not None), None)
    return compare_values(got, expected)


def compare_values(got: Any, expected: Any) -> str | None:
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            return f"{got!r} != {expected!r}"
        return next((p for p in map(compare_values, got, expected) if p is not None), None)
    if isinstance(expected, (str, bool, type(None), np.dtype)):
        return None if got == expected else f"{got!r} != {expected!r}"
    if np.isscalar(expected):
        return None if np.allclose(np.asarray(got), np.asarray(expected), rtol=1e-5) else f"{got!r} != {expected!r}"
    return compare_arrays(got, expected)


def compare_arrays(got: Any, expected: Any) -> str | None:
    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.dtype.kind not in "biufc":
        return None if got.tolist() == expected.tolist() else f"{got!r} != {expected!r}"
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return f"shape/dtype {got.shape} {got.dtype} != NumPy's {expected.shape} {expected.dtype}"
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-6, equal_nan=True):
        return f"values differ by up to {np.nanmax(np.abs(got - expected))}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=int, default=0, help="of the functions found by name, this many (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--derived-only", action="store_true")
    args = parser.parse_args()
    found = derived_cases()
    if args.sample:
        found = random.Random(args.seed).sample(found, min(args.sample, len(found)))
    failures = 0
    all_cases = ([] if args.derived_only else cases()) + found
    for name, function in all_cases:
        try:
            problem = compare(name, function)
        except Exception:
            problem = traceback.format_exc(limit=3)
        if problem is not None:
            failures += 1
            print(json.dumps({"case": name, "problem": problem}))
    print(json.dumps({"cases": len(all_cases), "by_name": len(found), "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
