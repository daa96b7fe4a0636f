"""Client-side errors, each with the exit code the CLI gives for it."""

from __future__ import annotations

from . import log

log.quiet_grpc()  # before gRPC is first imported: it reads its log level then

import grpc  # noqa: E402

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: no daemon could be reached
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: no lease could be had now
EXIT_NOPERM = 77  # EX_NOPERM: not allowed, or not authenticated
EXIT_CONFIG = 78  # EX_CONFIG: a configuration file is wrong
EXIT_FAILURE = 1


class BitshareError(Exception):
    """An error with a one-line message and an exit code."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(BitshareError):
    exit_code = EXIT_USAGE


class Unsatisfiable(UsageError):
    """No GPU of that daemon can ever hold the request."""


class NotFound(BitshareError):
    """No such lease (on that daemon)."""


class Unreachable(BitshareError):
    exit_code = EXIT_UNAVAILABLE


class NoLease(BitshareError):
    exit_code = EXIT_TEMPFAIL


class Denied(BitshareError):
    exit_code = EXIT_NOPERM


class LeaseLost(BitshareError):
    """The lease ended while its holder was running (revoked, expired, daemon gone)."""


_CODE_TO_ERROR: dict[grpc.StatusCode, type[BitshareError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: UsageError,
    grpc.StatusCode.OUT_OF_RANGE: Unsatisfiable,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: NoLease,
    grpc.StatusCode.PERMISSION_DENIED: Denied,
    grpc.StatusCode.UNAUTHENTICATED: Denied,
    grpc.StatusCode.UNAVAILABLE: Unreachable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unreachable,
}


def from_rpc_error(error: grpc.RpcError, server: str) -> BitshareError:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    cls = _CODE_TO_ERROR.get(code, BitshareError)
    if cls is Unreachable:
        return Unreachable(f"cannot reach bitshared at {server}: {details}")
    return cls(details or f"{code}")
