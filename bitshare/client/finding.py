"""Finding the daemons a client talks to, one way for the CLI and the console: the pool named by
flags or the client config, else the system daemon, else this user's per-user (embedded) one.

Each place keeps its checks: the per-user directory must be this user's own and private
(:func:`embedded.running_embedded`), and every connection checks its peer (:func:`connect`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, load_client_config, split_servers
from ..errors import EXIT_CONFIG, BitshareError, Unreachable
from .connection import Client, connect
from .embedded import ensure_embedded, running_embedded, system_daemon


@dataclass(frozen=True)
class Credentials:
    """How to reach a daemon: a bearer token, a CA file for TLS, plaintext TCP off loopback allowed."""

    token: str = ""
    tls_ca: str = ""
    allow_insecure_tcp: bool = False

    def connect(self, server: str) -> Client:
        return connect(server, self.token, self.tls_ca, self.allow_insecure_tcp)


@dataclass(frozen=True)
class Settings:
    """The daemons to talk to, in order (none: the default daemon), and how to reach them."""

    servers: tuple[str, ...]
    credentials: Credentials


def load_settings(
    servers: Iterable[str] = (),
    token: str = "",
    tls_ca: str = "",
    allow_insecure_tcp: bool = False,
    *,
    config_path: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """What was given (each server may be a comma-separated pool) over the client config: its files
    and BITSHARE_* variables (``config_path`` and ``environ`` replace those, for tests). A bad config
    is a one-line BitshareError, exit 78."""
    try:
        config = load_client_config(config_path, environ)
    except ConfigError as exc:
        raise BitshareError(str(exc), exit_code=EXIT_CONFIG) from None
    named = [server for item in servers for server in split_servers(item)]
    credentials = Credentials(
        token or config.token, tls_ca or config.tls_ca, allow_insecure_tcp or config.allow_insecure_tcp
    )
    return Settings(tuple(named or config.servers), credentials)


def running_default() -> str | None:
    """The address of the daemon to use when none is named, if one is running: the system daemon,
    else this user's per-user one (raises Denied when its directory is not this user's own)."""
    return system_daemon() or running_embedded()


def connect_default(credentials: Credentials, start: bool) -> tuple[Client, bool] | None:
    """A connection to the default daemon, and whether its per-user daemon was started just now
    (only with ``start``); None when none is running and ``start`` is false."""
    server = running_default()
    if server:
        return credentials.connect(server), False
    if not start:
        return None
    server, started = ensure_embedded()
    return credentials.connect(server), started


def connect_pool(settings: Settings) -> tuple[list[Client], list[Unreachable]]:
    """A connection to each daemon of the pool that answers, in order, and why each other did not;
    raises Unreachable when none answers."""
    clients: list[Client] = []
    failures: list[Unreachable] = []
    for server in settings.servers:
        try:
            clients.append(settings.credentials.connect(server))
        except Unreachable as exc:
            failures.append(exc)
    if not clients:
        if len(failures) == 1:
            raise failures[0]
        raise Unreachable(f"no daemon of the pool answers: {list(settings.servers)}")
    return clients, failures
