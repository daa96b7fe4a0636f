"""Resolve which daemons a command talks to, and remember the lease a session holds."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..client import Client, connect
from ..config import ConfigError, load_client_config, split_servers
from ..errors import EXIT_CONFIG, EXIT_UNAVAILABLE, BitshareError, NotFound, Unreachable, UsageError
from ..remote.embedded import ensure_embedded, running_embedded, system_daemon

Credentials = tuple[str, str, bool]  # token, TLS CA file, plaintext TCP allowed off loopback


@dataclass
class CliState:
    server: str = ""  # --server / BITSHARE_SERVER: one address, or a comma-separated pool
    token: str = ""
    tls_ca: str = ""
    allow_insecure_tcp: bool = False
    json: bool = False
    _clients: list[Client] = field(default_factory=list, repr=False)

    def _settings(self) -> tuple[list[str], Credentials]:
        try:
            config = load_client_config()
        except ConfigError as exc:
            raise BitshareError(str(exc), exit_code=EXIT_CONFIG) from None
        servers = split_servers(self.server) or config.servers
        credentials = (
            self.token or config.token,
            self.tls_ca or config.tls_ca,
            self.allow_insecure_tcp or config.allow_insecure_tcp,
        )
        return servers, credentials

    def pool(self, start_embedded: bool = True) -> list[Client]:
        """Every reachable daemon of the pool, in order; else the system or per-user daemon.

        Unreachable members are skipped with a warning; none reachable is an error (exit 69).
        """
        if self._clients:
            return self._clients
        servers, credentials = self._settings()
        if not servers:
            self._clients = [self._default(credentials, start_embedded)]
            return self._clients
        failures: list[Unreachable] = []
        for server in servers:
            try:
                self._clients.append(connect(server, *credentials))
            except Unreachable as exc:
                failures.append(exc)
        if not self._clients:
            raise failures[0] if len(failures) == 1 else Unreachable(f"no daemon of the pool answers: {servers}")
        for failure in failures:
            sys.stderr.write(f"bitshare: skipping: {failure}\n")
        return self._clients

    def client(self, start_embedded: bool = True) -> Client:
        """The one daemon a command acts on; in a pool of several, --server must name it."""
        servers, _ = self._settings()
        if len(servers) > 1:
            raise UsageError(f"this command acts on one daemon and the pool has {len(servers)}: name one with --server")
        return self.pool(start_embedded)[0]

    def session(self, lease_id: str | None) -> tuple[Client, str]:
        """The daemon and lease a session command acts on: --lease in the pool, else request-gpus's."""
        lease_id, server = session_lease(lease_id)
        if server and not self.server:
            _, credentials = self._settings()
            client = connect(server, *credentials)
            self._clients.append(client)
            return client, lease_id
        return self.holder_of(lease_id), lease_id

    def holder_of(self, lease_id: str) -> Client:
        """The daemon of the pool that knows the lease."""
        pool = self.pool()
        if len(pool) == 1:
            return pool[0]
        for client in pool:
            try:
                client.get(lease_id)
                return client
            except NotFound:
                continue
            except BitshareError:
                return client  # it knows the lease but will not show it: let the action say why
        raise NotFound(f"no lease {lease_id!r} on any daemon of the pool")

    def _default(self, credentials: Credentials, start_embedded: bool) -> Client:
        server = system_daemon() or running_embedded() or ""
        if server:
            return connect(server, *credentials)
        if not start_embedded:
            raise BitshareError("no bitshared is running (bitshare run starts a per-user one)", EXIT_UNAVAILABLE)
        server, started = ensure_embedded()
        client = connect(server, *credentials)
        if started:
            info = client.info
            what = "SIMULATED GPU (CPU-backed)" if info.simulated else f"{info.backend} GPUs"
            sys.stderr.write(f"bitshare: started a per-user bitshared on {server} with {info.gpu_count} {what}\n")
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients = []


def _session_file() -> Path:
    return paths.user_runtime_dir() / "session.json"


def save_session(server: str, lease_id: str) -> None:
    paths.ensure_private_dir(paths.user_runtime_dir())
    _session_file().write_text(json.dumps({"server": server, "lease_id": lease_id}))


def session_lease(explicit: str | None) -> tuple[str, str | None]:
    """The lease a session command acts on, and its daemon when known: --lease, else request-gpus's."""
    if explicit:
        return explicit, None
    try:
        saved = json.loads(_session_file().read_text())
        return saved["lease_id"], saved.get("server")
    except (FileNotFoundError, ValueError, KeyError):
        raise UsageError("no session lease: run bitshare request-gpus first, or pass --lease ID") from None


def forget_session(lease_id: str) -> None:
    try:
        if json.loads(_session_file().read_text()).get("lease_id") == lease_id:
            _session_file().unlink()
    except (FileNotFoundError, ValueError):
        pass
