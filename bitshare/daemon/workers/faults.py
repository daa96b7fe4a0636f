"""What the worker refuses, and the name of the exception each failure is raised as on the client."""

from __future__ import annotations

from ...protocol.wire import WireError


class RemoteFault(Exception):
    """An operation the worker refuses; ``kind`` is the exception type the client raises."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class KernelsNeedAGpu(RemoteFault):
    def __init__(self, what: str) -> None:
        super().__init__(
            "KernelUnavailable",
            f"{what} needs a GPU: this lease is on a simulated GPU (NumPy on the CPU), which has no CUDA compiler",
        )


def error_type(exc: BaseException) -> str:
    """The name under which the client raises ``exc`` (CuPy's exception types where it has its own)."""
    if isinstance(exc, RemoteFault):
        return exc.kind
    if isinstance(exc, WireError):
        return "ValueError"
    name = type(exc).__name__
    if name in ("OutOfMemoryError", "LinAlgError", "AxisError", "CUDARuntimeError", "CompileException"):
        return name
    if isinstance(exc, MemoryError):
        return "OutOfMemoryError"
    for builtin in (IndexError, ValueError, TypeError, ZeroDivisionError, FloatingPointError, NotImplementedError):
        if isinstance(exc, builtin):
            return builtin.__name__
    return "RuntimeError"
