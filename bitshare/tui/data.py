"""Where the console's data comes from: one source per daemon.

A source streams snapshots of its daemon and carries out admin actions. An admin's snapshots
come from the telemetry stream (``WatchTelemetry``); a client may not open it, so a client's are
put together from what a client may read (``ListGpus``, ``ListLeases``: its own leases). Each
snapshot names the caller's role (``server.caller_role``), which says what the console may do.
The console runs each source's stream in a worker thread, so nothing here touches the UI.
:class:`FixedSource` serves recorded snapshots, for snapshot tests and demos.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from ..client.connection import Client
from ..client.finding import Credentials
from ..errors import BitshareError
from ..protocol.status import from_rpc_error
from ..protocol.v1 import bitshare_pb2 as pb

# A client's console asks at most this often (two calls each time, from every such console).
CLIENT_POLL_S = 1.0


class Source(Protocol):
    name: str  # the daemon's address, as the console shows it

    def snapshots(self, min_interval_s: float) -> Iterator[pb.TelemetrySnapshot]:
        """Snapshots as the daemon changes; raises BitshareError when the daemon goes away."""
        ...

    def stop(self) -> None: ...

    def events(self, lease_id: str, limit: int = 200) -> list[pb.Event]: ...

    def resize(self, lease_id: str, fraction: float | None, memory_mib: int | None) -> pb.Lease: ...

    def revoke(self, lease_id: str, reason: str) -> pb.Lease: ...

    def drain(self, gpu_index: int, drained: bool) -> pb.Gpu: ...

    def set_priority(self, lease_id: str, priority: int) -> pb.Lease: ...


class DaemonSource:
    """A real daemon, reached with the caller's token (or local identity on a Unix socket)."""

    def __init__(self, server: str, token: str = "", tls_ca: str = "", allow_insecure_tcp: bool = False) -> None:
        self.name = server
        self._credentials = Credentials(token, tls_ca, allow_insecure_tcp)
        self._client: Client | None = None
        self._call: grpc.Future | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def _connected(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = self._credentials.connect(self.name)
            return self._client

    def _drop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def snapshots(self, min_interval_s: float) -> Iterator[pb.TelemetrySnapshot]:
        try:
            client = self._connected()
            if client.info.caller_role != pb.ROLE_ADMIN:
                yield from self._client_snapshots(client, max(min_interval_s, CLIENT_POLL_S))
                return
            call = client.watch_telemetry(min_interval_s)
            self._call = call
            yield from call
        except grpc.RpcError as exc:
            self._drop()
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(exc, self.name) from None
        except BitshareError:
            self._drop()
            raise
        raise BitshareError(f"{self.name} ended the telemetry stream")

    def _client_snapshots(self, client: Client, interval_s: float) -> Iterator[pb.TelemetrySnapshot]:
        """What a client may see, asked for every ``interval_s`` until the source is stopped: the
        GPUs (others' partitions unnamed) and its own leases."""
        version = 0
        while not self._stopped.is_set():
            version += 1
            leases = client.my_leases()
            yield pb.TelemetrySnapshot(server=client.info, gpus=client.gpus(), leases=leases, version=version)
            self._stopped.wait(interval_s)

    def stop(self) -> None:
        self._stopped.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._drop()

    def events(self, lease_id: str, limit: int = 200) -> list[pb.Event]:
        return self._connected().events(limit=limit, lease_id=lease_id)

    def resize(self, lease_id: str, fraction: float | None, memory_mib: int | None) -> pb.Lease:
        return self._connected().resize(lease_id, fraction=fraction, memory_mib=memory_mib)

    def revoke(self, lease_id: str, reason: str) -> pb.Lease:
        return self._connected().revoke(lease_id, reason)

    def drain(self, gpu_index: int, drained: bool) -> pb.Gpu:
        return self._connected().drain(gpu_index, drained)

    def set_priority(self, lease_id: str, priority: int) -> pb.Lease:
        return self._connected().set_priority(lease_id, priority)


@dataclass
class FixedSource:
    """Recorded snapshots, served once each; actions are refused (it is a picture, not a daemon)."""

    name: str
    recorded: list[pb.TelemetrySnapshot]  # their ``server.caller_role`` says what the console may do
    lease_events: dict[str, list[pb.Event]] = field(default_factory=dict)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def snapshots(self, min_interval_s: float) -> Iterator[pb.TelemetrySnapshot]:
        yield from self.recorded
        self._stopped.wait()  # then quiet: the last picture stays
        raise BitshareError(f"{self.name} stopped")

    def stop(self) -> None:
        self._stopped.set()

    def events(self, lease_id: str, limit: int = 200) -> list[pb.Event]:
        return self.lease_events.get(lease_id, [])[:limit]

    def _refuse(self, *_args: object) -> pb.Lease:
        raise BitshareError("a recorded source takes no actions")

    resize = revoke = set_priority = _refuse  # type: ignore[assignment]

    def drain(self, gpu_index: int, drained: bool) -> pb.Gpu:
        raise BitshareError("a recorded source takes no actions")
