"""Resolve which daemon a command talks to, and remember the lease a session holds."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..client import Client, connect
from ..config import ConfigError, load_client_config
from ..errors import EXIT_CONFIG, BitshareError, UsageError
from ..remote.embedded import ensure_embedded, running_embedded, system_daemon


@dataclass
class CliState:
    server: str = ""
    token: str = ""
    tls_ca: str = ""
    json: bool = False
    _client: Client | None = field(default=None, repr=False)

    def client(self, start_embedded: bool = True) -> Client:
        """A connection to the configured daemon, the system one, or the per-user one (started on demand)."""
        if self._client is not None:
            return self._client
        try:
            config = load_client_config()
        except ConfigError as exc:
            raise BitshareError(str(exc), exit_code=EXIT_CONFIG) from None
        server = self.server or config.server
        token = self.token or config.token
        tls_ca = self.tls_ca or config.tls_ca
        if not server:
            server = system_daemon() or running_embedded() or ""
        if not server:
            if not start_embedded:
                raise BitshareError("no bitshared is running (bitshare run starts a per-user one)", exit_code=69)
            server, started = ensure_embedded()
            client = connect(server, token, tls_ca)
            if started:
                info = client.server_info()
                what = "SIMULATED GPU (CPU-backed)" if info.simulated else f"{info.backend} GPUs"
                sys.stderr.write(f"bitshare: started a per-user bitshared on {server} with {info.gpu_count} {what}\n")
            self._client = client
            return client
        self._client = connect(server, token, tls_ca)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _session_file() -> Path:
    return paths.user_runtime_dir() / "session.json"


def save_session(server: str, lease_id: str) -> None:
    paths.ensure_private_dir(paths.user_runtime_dir())
    _session_file().write_text(json.dumps({"server": server, "lease_id": lease_id}))


def session_lease(explicit: str | None) -> str:
    """The lease a session command acts on: --lease, else the one request-gpus saved."""
    if explicit:
        return explicit
    try:
        return json.loads(_session_file().read_text())["lease_id"]
    except (FileNotFoundError, ValueError, KeyError):
        raise UsageError("no session lease: run bitshare request-gpus first, or pass --lease ID") from None


def forget_session(lease_id: str) -> None:
    try:
        if json.loads(_session_file().read_text()).get("lease_id") == lease_id:
            _session_file().unlink()
    except (FileNotFoundError, ValueError):
        pass
