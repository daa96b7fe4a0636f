"""One line per event on stderr, as ``time level event key=value ...`` (journald keeps it)."""

from __future__ import annotations

import logging
import os
import sys
import time

_LOGGER = logging.getLogger("bitshare")


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = getattr(record, "fields", {})
        parts = [f"{stamp}.{int(record.msecs):03d}Z", record.levelname.lower(), record.getMessage()]
        parts += [f"{key}={_quote(value)}" for key, value in fields.items()]
        return " ".join(parts)


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def setup(level: str = "info") -> None:
    """Send bitshare's log lines to stderr at the given level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    _LOGGER.handlers[:] = [handler]
    _LOGGER.setLevel(level.upper())
    _LOGGER.propagate = False


def event(name: str, level: int = logging.INFO, **fields: object) -> None:
    """Log one event with its fields."""
    if _LOGGER.isEnabledFor(level):
        _LOGGER.log(level, name, extra={"fields": fields})


def warning(name: str, **fields: object) -> None:
    event(name, logging.WARNING, **fields)


def error(name: str, **fields: object) -> None:
    event(name, logging.ERROR, **fields)


def quiet_grpc() -> None:
    """Keep gRPC's own log lines (``I1201 ... ssl_transport_security.cc``) off stderr, unless
    GRPC_VERBOSITY or GRPC_TRACE asks for them: bitshare says what went wrong in one line itself.

    gRPC reads GRPC_VERBOSITY once, as it is imported; the variable is taken away again so that
    the commands bitshare runs get the user's environment as it was.
    """
    if "grpc" in sys.modules or "GRPC_VERBOSITY" in os.environ or "GRPC_TRACE" in os.environ:
        return
    os.environ["GRPC_VERBOSITY"] = "NONE"
    try:
        import grpc  # noqa: F401
    finally:
        del os.environ["GRPC_VERBOSITY"]
