"""One line per event on stderr, as ``time level event key=value ...`` (journald keeps it)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

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

    gRPC reads GRPC_VERBOSITY once, as it is first imported. This does not import gRPC (a lease's
    GPU worker never loads it): it has gRPC's first import, by whichever module, run with
    GRPC_VERBOSITY=NONE, taken away again after, so that the commands bitshare runs get the
    user's environment as it was.
    """
    if "grpc" not in sys.modules and not any(isinstance(f, _QuietGrpcImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietGrpcImport())


def _grpc_logs_asked_for() -> bool:
    return "GRPC_VERBOSITY" in os.environ or "GRPC_TRACE" in os.environ


class _QuietGrpcImport:
    """The finder of gRPC's first import: it finds gRPC as the other finders do, to be run quietly."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name != "grpc":
            return None
        sys.meta_path.remove(self)  # once: the search below and every later import go past it
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """Runs gRPC's own loader with GRPC_VERBOSITY=NONE set for as long as gRPC is being imported."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # gRPC's module is left as its own loader would have made it.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        if _grpc_logs_asked_for():
            self.loader.exec_module(module)
            return
        os.environ["GRPC_VERBOSITY"] = "NONE"
        try:
            self.loader.exec_module(module)
        finally:
            del os.environ["GRPC_VERBOSITY"]
