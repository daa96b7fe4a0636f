"""The functions of the worker's array library that a remote client may call by name.

Derived from the library itself, not from a list: CuPy (and cupyx.scipy) on a real GPU, NumPy
(and SciPy, where it is installed) on a simulated one. A function is forwarded when it is a
public routine or ufunc of one of the catalog's ``SUBMODULES`` and the catalog does not deny it
(file I/O, global state, callables). The client gets each module's list once, with each
function's signature, as JSON: names, parameter kinds and defaults (literal values, or their repr).
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ...protocol import catalog

MAX_REPR = 80  # a default that is not a literal travels as its repr, cut to this length


@dataclass
class Surface:
    """The forwarded functions by qualified name (``linalg.norm``), listed module by module at
    the first need of each (importing SciPy costs a second)."""

    gpu: bool
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)  # prefix -> name -> function

    def module(self, prefix: str) -> dict[str, Any]:
        """The functions of one of the catalog's modules (none for another, or one not installed)."""
        if prefix not in self.modules:
            known = prefix in catalog.SUBMODULES or prefix == catalog.METHODS_PREFIX
            self.modules[prefix] = _functions(prefix, self.gpu) if known else {}
        return self.modules[prefix]

    def resolve(self, qualified: str) -> Any:
        """The function, or None when it is not forwarded."""
        prefix, name = catalog.split(qualified)
        return self.module(prefix).get(name)

    def describe(self, prefix: str) -> str:
        """The JSON the client builds one module from."""
        functions = self.module(prefix)
        entries = {f"{prefix}.{name}" if prefix else name: _entry(function) for name, function in functions.items()}
        return json.dumps({"module": prefix, "functions": entries}, separators=(",", ":"))


def _functions(prefix: str, gpu: bool) -> dict[str, Any]:
    if prefix == catalog.METHODS_PREFIX:  # the array type's methods
        library = _import("cupy" if gpu else "numpy")
        module: Any = library.ndarray if library is not None else None
    else:
        cupy_module, numpy_module = catalog.SUBMODULES[prefix]
        module = _import(cupy_module if gpu else numpy_module)
    if module is None:
        return {}  # (SciPy not installed beside NumPy: no cupyx.scipy here)
    found = {}
    for name in sorted(dir(module)):
        qualified = f"{prefix}.{name}" if prefix else name
        target = getattr(module, name, None)
        if not catalog.denied(qualified) and _forwardable(target):
            found[name] = target
    return found


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _is_ufunc(target: Any) -> bool:
    """NumPy's, SciPy's and CuPy's ufuncs (CuPy's are not ``numpy.ufunc``)."""
    return type(target).__name__ == "ufunc" and hasattr(target, "nin") and hasattr(target, "nout")


def _forwardable(target: Any) -> bool:
    if _is_ufunc(target):
        return True
    if isinstance(target, (type, ModuleType)) or not callable(target):
        return False
    # Python and builtin functions, NumPy's array-function dispatchers, CuPy's Cython functions.
    return inspect.isroutine(target) or type(target).__name__ in (
        "_ArrayFunctionDispatcher",
        "cython_function_or_method",
    )


def _entry(function: Any) -> dict[str, Any]:
    if _is_ufunc(function):
        entry: dict[str, Any] = {"kind": "ufunc", "nin": int(function.nin), "nout": int(function.nout)}
    else:
        entry = {"kind": "function"}
    params = _parameters(function)
    if params is not None:
        entry["params"] = params
    return entry


def _parameters(function: Any) -> list[list[Any]] | None:
    """[name, kind, default] for each parameter (kind: inspect's, as an int; default: {"value": v}
    for a literal, {"repr": text} otherwise, absent without one); None where Python cannot tell."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return _ufunc_parameters(function) if _is_ufunc(function) else None
    out = []
    for parameter in signature.parameters.values():
        item: list[Any] = [parameter.name, int(parameter.kind)]
        if parameter.default is not inspect.Parameter.empty:
            item.append(_default(parameter.default))
        out.append(item)
    return out


def _ufunc_parameters(function: Any) -> list[list[Any]]:
    """CuPy's ufuncs have no signature Python can read; they take these."""
    positional = ["x"] if function.nin == 1 else [f"x{i + 1}" for i in range(function.nin)]
    only = int(inspect.Parameter.POSITIONAL_ONLY)
    keyword = int(inspect.Parameter.KEYWORD_ONLY)
    params: list[list[Any]] = [[name, only] for name in positional]
    params.append(["out", int(inspect.Parameter.POSITIONAL_OR_KEYWORD), {"value": None}])
    params += [["casting", keyword, {"value": "same_kind"}], ["dtype", keyword, {"value": None}]]
    return params


def _default(value: Any) -> dict[str, Any]:
    if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return {"value": value}
    return {"repr": repr(value)[:MAX_REPR]}
