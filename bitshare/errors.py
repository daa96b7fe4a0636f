"""bitshare's one error tree: each class declares its exit code (the CLI's) and its gRPC status
(the daemon's answer) once, and the two maps here turn errors into statuses and back."""

from __future__ import annotations

from . import log

log.quiet_grpc()  # before gRPC is first imported: it reads its log level then

import grpc  # noqa: E402

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: no daemon could be reached
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: no lease could be had now
EXIT_NOPERM = 77  # EX_NOPERM: not allowed, or not authenticated
EXIT_CONFIG = 78  # EX_CONFIG: a configuration file is wrong
EXIT_NO_COMMAND = 127  # the shell's: the command to run does not exist
EXIT_FAILURE = 1


class BitshareError(Exception):
    """An error with a one-line message, an exit code and the gRPC status the daemon answers it with."""

    exit_code = EXIT_FAILURE
    status = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(BitshareError):
    """A request that is malformed: a bad flag, a size out of range."""

    exit_code = EXIT_USAGE
    status = grpc.StatusCode.INVALID_ARGUMENT


class Unsatisfiable(UsageError):
    """No GPU of that daemon can ever hold the request."""

    status = grpc.StatusCode.OUT_OF_RANGE


class NotFound(BitshareError):
    """No such lease (on that daemon)."""

    status = grpc.StatusCode.NOT_FOUND


class Unreachable(BitshareError):
    """No daemon answered, or the daemon cannot serve the call now."""

    exit_code = EXIT_UNAVAILABLE
    status = grpc.StatusCode.UNAVAILABLE


class NoLease(BitshareError):
    """The request does not fit now (and may not wait)."""

    exit_code = EXIT_TEMPFAIL
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class Denied(BitshareError):
    """The caller may not do that."""

    exit_code = EXIT_NOPERM
    status = grpc.StatusCode.PERMISSION_DENIED


class ConfigError(BitshareError, ValueError):
    """A configuration file or value that cannot be used; the message names it."""

    exit_code = EXIT_CONFIG


class CommandNotFound(UsageError):
    """The command to run under a lease does not exist or may not be run."""

    exit_code = EXIT_NO_COMMAND


class LeaseLost(BitshareError):
    """The lease ended while its holder was running (revoked, expired, daemon gone)."""


class ArrayLost(BitshareError):
    """An array held by a remote worker that is gone (the lease is kept; arrays made since work)."""


class DaemonError(BitshareError, RuntimeError):
    """The daemon cannot go on as asked: its state, backend or enforcement failed."""


class StartupError(DaemonError):
    """The daemon cannot start; the message says why."""


class StoreError(DaemonError):
    """The state store cannot be opened or written: changes are refused until it can."""

    status = grpc.StatusCode.UNAVAILABLE


# status -> the error a client raises for it; the first class declaring a status is its own.
_CLIENT_ERRORS: tuple[type[BitshareError], ...] = (UsageError, Unsatisfiable, NotFound, NoLease, Denied, Unreachable)
_ERROR_OF_STATUS: dict[grpc.StatusCode, type[BitshareError]] = {
    **{cls.status: cls for cls in _CLIENT_ERRORS},
    grpc.StatusCode.UNAUTHENTICATED: Denied,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unreachable,
}


def status_of(error: BaseException) -> grpc.StatusCode:
    """The gRPC status the daemon answers an error with: the one its class declares (the ledger,
    which imports no gRPC, declares its statuses by name)."""
    declared = getattr(type(error), "status", grpc.StatusCode.UNKNOWN)
    return grpc.StatusCode[declared] if isinstance(declared, str) else declared


def error_for_status(code: grpc.StatusCode | None) -> type[BitshareError]:
    """The error class a client raises for a daemon's status."""
    return _ERROR_OF_STATUS.get(code, BitshareError) if code is not None else BitshareError


def from_rpc_error(error: grpc.RpcError, server: str) -> BitshareError:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    cls = error_for_status(code)
    if cls is Unreachable:
        return Unreachable(f"cannot reach bitshared at {server}: {details}")
    return cls(details or f"{code}")
