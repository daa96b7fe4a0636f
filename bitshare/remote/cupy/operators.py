"""The Python operators of remote arrays, each the NumPy ufunc CuPy gives it.

A mixin, so that array.py keeps the array's state and how operations are queued: the
operators call the three hooks below, which ``ndarray`` implements.
"""

from __future__ import annotations

from typing import Any

INPLACE_UFUNC = {  # in-place operator -> its ufunc
    "__iadd__": "add",
    "__isub__": "subtract",
    "__imul__": "multiply",
    "__itruediv__": "true_divide",
    "__ifloordiv__": "floor_divide",
    "__imod__": "remainder",
    "__ipow__": "power",
    "__iand__": "bitwise_and",
    "__ior__": "bitwise_or",
    "__ixor__": "bitwise_xor",
}


class Operators:
    """``a + b``, ``a @ b``, ``a += b``, ``a < b`` ... on remote arrays."""

    __slots__ = ()

    def _ufunc(self, name: str, *operands: Any) -> Any:
        """The ufunc ``name`` of the operands, queued."""
        raise NotImplementedError

    def _matmul(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def _inplace(self, name: str, other: Any) -> Any:
        """The in-place operator ``name`` (a key of INPLACE_UFUNC) applied to this array."""
        raise NotImplementedError

    def __add__(self, other: Any) -> Any:
        return self._ufunc("add", self, other)

    def __radd__(self, other: Any) -> Any:
        return self._ufunc("add", other, self)

    def __sub__(self, other: Any) -> Any:
        return self._ufunc("subtract", self, other)

    def __rsub__(self, other: Any) -> Any:
        return self._ufunc("subtract", other, self)

    def __mul__(self, other: Any) -> Any:
        return self._ufunc("multiply", self, other)

    def __rmul__(self, other: Any) -> Any:
        return self._ufunc("multiply", other, self)

    def __truediv__(self, other: Any) -> Any:
        return self._ufunc("true_divide", self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return self._ufunc("true_divide", other, self)

    def __floordiv__(self, other: Any) -> Any:
        return self._ufunc("floor_divide", self, other)

    def __rfloordiv__(self, other: Any) -> Any:
        return self._ufunc("floor_divide", other, self)

    def __mod__(self, other: Any) -> Any:
        return self._ufunc("remainder", self, other)

    def __rmod__(self, other: Any) -> Any:
        return self._ufunc("remainder", other, self)

    def __pow__(self, other: Any) -> Any:
        return self._ufunc("power", self, other)

    def __rpow__(self, other: Any) -> Any:
        return self._ufunc("power", other, self)

    def __matmul__(self, other: Any) -> Any:
        return self._matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return self._matmul(other, self)

    def __and__(self, other: Any) -> Any:
        return self._ufunc("bitwise_and", self, other)

    def __rand__(self, other: Any) -> Any:
        return self._ufunc("bitwise_and", other, self)

    def __or__(self, other: Any) -> Any:
        return self._ufunc("bitwise_or", self, other)

    def __ror__(self, other: Any) -> Any:
        return self._ufunc("bitwise_or", other, self)

    def __xor__(self, other: Any) -> Any:
        return self._ufunc("bitwise_xor", self, other)

    def __rxor__(self, other: Any) -> Any:
        return self._ufunc("bitwise_xor", other, self)

    def __lshift__(self, other: Any) -> Any:
        return self._ufunc("left_shift", self, other)

    def __rshift__(self, other: Any) -> Any:
        return self._ufunc("right_shift", self, other)

    def __neg__(self) -> Any:
        return self._ufunc("negative", self)

    def __pos__(self) -> Any:
        return self._ufunc("positive", self)

    def __abs__(self) -> Any:
        return self._ufunc("absolute", self)

    def __invert__(self) -> Any:
        return self._ufunc("invert", self)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self._ufunc("equal", self, other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self._ufunc("not_equal", self, other)

    def __lt__(self, other: Any) -> Any:
        return self._ufunc("less", self, other)

    def __le__(self, other: Any) -> Any:
        return self._ufunc("less_equal", self, other)

    def __gt__(self, other: Any) -> Any:
        return self._ufunc("greater", self, other)

    def __ge__(self, other: Any) -> Any:
        return self._ufunc("greater_equal", self, other)

    __hash__ = None  # type: ignore[assignment]

    def __iadd__(self, other: Any) -> Any:
        return self._inplace("__iadd__", other)

    def __isub__(self, other: Any) -> Any:
        return self._inplace("__isub__", other)

    def __imul__(self, other: Any) -> Any:
        return self._inplace("__imul__", other)

    def __itruediv__(self, other: Any) -> Any:
        return self._inplace("__itruediv__", other)

    def __ifloordiv__(self, other: Any) -> Any:
        return self._inplace("__ifloordiv__", other)

    def __imod__(self, other: Any) -> Any:
        return self._inplace("__imod__", other)

    def __ipow__(self, other: Any) -> Any:
        return self._inplace("__ipow__", other)

    def __iand__(self, other: Any) -> Any:
        return self._inplace("__iand__", other)

    def __ior__(self, other: Any) -> Any:
        return self._inplace("__ior__", other)

    def __ixor__(self, other: Any) -> Any:
        return self._inplace("__ixor__", other)
