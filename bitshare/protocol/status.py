"""The gRPC statuses of bitshare's errors: the daemon answers an error with the status its class
names, and the client raises the tree's class for the status it gets back."""

from __future__ import annotations

import grpc

from ..errors import BitshareError, Denied, NoLease, NotFound, Unreachable, Unsatisfiable, UsageError

# status -> the error a client raises for it; the first class declaring a status is its own.
_CLIENT_ERRORS: tuple[type[BitshareError], ...] = (UsageError, Unsatisfiable, NotFound, NoLease, Denied, Unreachable)
_ERROR_OF_STATUS: dict[grpc.StatusCode, type[BitshareError]] = {
    **{grpc.StatusCode[cls.status]: cls for cls in _CLIENT_ERRORS},
    grpc.StatusCode.UNAUTHENTICATED: Denied,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unreachable,
}


def status_of(error: BaseException) -> grpc.StatusCode:
    """The gRPC status the daemon answers an error with: the one its class names (UNKNOWN for
    an error outside the tree)."""
    return grpc.StatusCode[type(error).status] if isinstance(error, BitshareError) else grpc.StatusCode.UNKNOWN


def error_for_status(code: grpc.StatusCode | None) -> type[BitshareError]:
    """The error class a client raises for a daemon's status."""
    return _ERROR_OF_STATUS.get(code, BitshareError) if code is not None else BitshareError


def from_rpc_error(error: grpc.RpcError, server: str) -> BitshareError:
    """The tree's error for a failed call to the daemon at ``server``, with the daemon's message."""
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    cls = error_for_status(code)
    if cls is Unreachable:
        return Unreachable(f"cannot reach bitshared at {server}: {details}")
    return cls(details or f"{code}")
