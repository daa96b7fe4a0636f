"""bitshare's one error tree: each class declares its exit code (the CLI's) and its gRPC status
(the daemon's answer) once. Standard library only, so that every part may raise its errors (the
ledger too); the status is a ``grpc.StatusCode`` name, which bitshare/protocol/status.py maps."""

from __future__ import annotations

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
    status = "FAILED_PRECONDITION"  # the name of a grpc.StatusCode

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(BitshareError):
    """A request that is malformed: a bad flag, a size out of range."""

    exit_code = EXIT_USAGE
    status = "INVALID_ARGUMENT"


class Unsatisfiable(UsageError):
    """No GPU of that daemon can ever hold the request."""

    status = "OUT_OF_RANGE"


class NotFound(BitshareError):
    """No such lease (on that daemon)."""

    status = "NOT_FOUND"


class WrongState(BitshareError):
    """The lease is not in a state that allows the operation (it has ended, it is not active...)."""


class Unreachable(BitshareError):
    """No daemon answered, or the daemon cannot serve the call now."""

    exit_code = EXIT_UNAVAILABLE
    status = "UNAVAILABLE"


class NoLease(BitshareError):
    """The request does not fit now (and may not wait)."""

    exit_code = EXIT_TEMPFAIL
    status = "RESOURCE_EXHAUSTED"


class Denied(BitshareError):
    """The caller may not do that."""

    exit_code = EXIT_NOPERM
    status = "PERMISSION_DENIED"


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

    status = "UNAVAILABLE"


# What a request the daemon's rules refuse raises (the ledger's refusals): nothing was changed.
REFUSALS: tuple[type[BitshareError], ...] = (UsageError, NotFound, NoLease, WrongState)
