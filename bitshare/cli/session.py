"""Resolve which daemons a command talks to, and remember the lease a session holds."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..client.connection import Client
from ..client.finding import Settings, connect_default, connect_pool, load_settings
from ..errors import EXIT_UNAVAILABLE, BitshareError, Denied, NotFound, UsageError
from .output import note


@dataclass
class CliState:
    server: str = ""  # --server / BITSHARE_SERVER: one address, or a comma-separated pool
    token: str = ""
    tls_ca: str = ""
    allow_insecure_tcp: bool = False
    json: bool = False
    _clients: list[Client] = field(default_factory=list, repr=False)
    _found: Settings | None = field(default=None, repr=False)

    def _settings(self) -> Settings:
        if self._found is None:
            self._found = load_settings([self.server], self.token, self.tls_ca, self.allow_insecure_tcp)
        return self._found

    def pool(self, start_embedded: bool = True) -> list[Client]:
        """Every reachable daemon of the pool, in order; else the system or per-user daemon.

        Unreachable members are skipped with a warning; none reachable is an error (exit 69).
        """
        if self._clients:
            return self._clients
        settings = self._settings()
        if not settings.servers:
            self._clients = [self._default(settings, start_embedded)]
            return self._clients
        self._clients, skipped = connect_pool(settings)
        for failure in skipped:
            note(f"skipping: {failure}")
        return self._clients

    def client(self, start_embedded: bool = True) -> Client:
        """The one daemon a command acts on; in a pool of several, --server must name it."""
        servers = self._settings().servers
        if len(servers) > 1:
            raise UsageError(f"this command acts on one daemon and the pool has {len(servers)}: name one with --server")
        return self.pool(start_embedded)[0]

    def session(self, lease_id: str | None) -> tuple[Client, str]:
        """The daemon and lease a session command acts on: --lease in the pool, else request-gpus's."""
        lease_id, server = session_lease(lease_id)
        if server and not self.server:
            client = self._settings().credentials.connect(server)
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

    def _default(self, settings: Settings, start_embedded: bool) -> Client:
        found = connect_default(settings.credentials, start=start_embedded)
        if found is None:
            raise BitshareError("no bitshared is running (bitshare run starts a per-user one)", EXIT_UNAVAILABLE)
        client, started = found
        if started:
            info = client.info
            what = "SIMULATED GPU (CPU-backed)" if info.simulated else f"{info.backend} GPUs"
            note(f"started a per-user bitshared on {client.address} with {info.gpu_count} {what}")
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients = []


@dataclass(frozen=True)
class SessionLease:
    """A lease request-gpus holds for this user, and the daemon it came from."""

    lease_id: str
    server: str


def _session_file() -> Path:
    return paths.user_runtime_dir() / "session.json"


def session_leases() -> list[SessionLease]:
    """The leases request-gpus holds for this user, oldest first.

    The file is read only from this user's private runtime directory, and only when it is this
    user's own regular file (not a link): anyone else's could name a daemon of theirs.
    """
    path = _session_file()
    paths.ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return []
    except OSError as exc:  # ELOOP: a symbolic link
        raise Denied(f"refusing {path}: {exc.strerror.lower()}; remove it") from None
    with os.fdopen(fd) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise Denied(f"refusing {path}: it is not a private file of this user; remove it")
        text = handle.read()
    return _parse_sessions(text)


def _parse_sessions(text: str) -> list[SessionLease]:
    """The entries of a session file; a damaged file holds none (the daemon still has the leases)."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    entries = data.get("leases", [data]) if isinstance(data, dict) else []  # [data]: one lease, as older files hold
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("lease_id"), str) and entry["lease_id"]:
            server = entry.get("server")
            found.append(SessionLease(entry["lease_id"], server if isinstance(server, str) else ""))
    return found


def _write_sessions(leases: list[SessionLease]) -> None:
    """Replace the session file at once (a reader sees the old list or the new), mode 0600."""
    path = _session_file()
    if not leases:
        path.unlink(missing_ok=True)
        return
    data = {"leases": [{"lease_id": lease.lease_id, "server": lease.server} for lease in leases]}
    partial = path.with_name(f".session.{os.getpid()}.tmp")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(data))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _sessions_locked() -> Iterator[None]:
    """One change of the session file at a time: two request-gpus at once both keep their lease."""
    directory = paths.ensure_private_dir(paths.user_runtime_dir())
    fd = os.open(directory / "session.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def save_session(server: str, lease_id: str) -> list[SessionLease]:
    """Add a lease to this user's session leases; returns the others still held."""
    try:
        with _sessions_locked():
            others = [lease for lease in session_leases() if lease.lease_id != lease_id]
            _write_sessions([*others, SessionLease(lease_id, server)])
    except OSError as exc:
        raise BitshareError(f"cannot record the session lease in {_session_file()}: {exc.strerror}") from None
    return others


def session_lease(explicit: str | None) -> tuple[str, str | None]:
    """The lease a session command acts on, and its daemon when known: --lease, else the latest
    request-gpus holds."""
    if explicit:
        return explicit, None
    leases = session_leases()
    if not leases:
        raise UsageError("no session lease: run bitshare request-gpus first, or pass --lease ID")
    return leases[-1].lease_id, leases[-1].server or None


def forget_session(lease_id: str) -> list[SessionLease]:
    """Drop a lease from this user's session leases; returns those still held."""
    try:
        with _sessions_locked():
            leases = session_leases()
            remaining = [lease for lease in leases if lease.lease_id != lease_id]
            if remaining != leases:
                _write_sessions(remaining)
    except Denied:
        return []  # no session file of this user's: nothing of theirs to forget
    except OSError as exc:  # the lease is given back all the same; only the record is stale
        note(f"warning: cannot update {_session_file()}: {exc.strerror}")
        return []
    return remaining
