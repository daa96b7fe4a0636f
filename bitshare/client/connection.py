"""The client library: one connection to one bitshared, used by the CLI, the console and the agent.

client = connect("unix:/run/bitshare/bitshared.sock")
lease = client.request(LeaseRequest(fraction=0.25))
"""

from __future__ import annotations

import json
import socket
import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from .. import paths
from ..address import Address, parse_address
from ..errors import BitshareError, Denied, Unreachable, UsageError
from ..protocol.status import from_rpc_error
from ..protocol.v1 import bitshare_pb2 as pb
from ..protocol.v1 import bitshare_pb2_grpc as pb_grpc
from . import transport

T = TypeVar("T")
CONNECT_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 30.0
MAX_MESSAGE = 64 * 1024 * 1024


@dataclass(frozen=True)
class LeaseRequest:
    """What a client asks for. Exactly one of ``fraction`` and ``memory_mib``."""

    fraction: float | None = None
    memory_mib: int | None = None
    gpu_count: int = 1
    compute_pct: int = 0
    name: str = ""
    min_memory_mib: int = 0
    indices: tuple[int, ...] = ()
    priority: int = 0
    wait: bool = True
    wait_timeout_s: float = 0.0
    ttl_s: float = 0.0
    command: str = ""
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    owner_user: str = ""  # admins: the local user the lease is for
    slurm_job: str = ""  # admins: the Slurm job the lease is for
    client_host: str = field(default_factory=socket.gethostname)

    def to_pb(self) -> pb.RequestLeaseRequest:
        """The request as sent; a value the message cannot carry (a number out of its field's
        range, a wrong type) is a :class:`UsageError` that names the field."""
        if self.fraction is not None and self.memory_mib is not None:
            raise UsageError("give LeaseRequest fraction or memory_mib, not both")
        message = pb.RequestLeaseRequest()
        spec = message.spec
        for name in ("gpu_count", "compute_pct", "priority", "wait", "wait_timeout_s", "ttl_s"):
            _put(spec, name, getattr(self, name))
        for name in ("fraction", "memory_mib"):
            if getattr(self, name) is not None:
                _put(spec, name, getattr(self, name))
        for name in ("name", "min_memory_mib", "indices"):
            _put(spec.filter, name, getattr(self, name))
        for name in ("request_id", "command", "owner_user", "slurm_job", "client_host"):
            _put(message, name, getattr(self, name))
        message.command = message.command[:4096]
        return message


_INTEGER_RANGES = {
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
}


def _put(message: Message, name: str, value: object) -> None:
    """Set field ``name`` of ``message`` (LeaseRequest's field of that name) to ``value``.

    Protobuf's own errors ("Value out of range: -1") name neither the field nor its range."""
    field = message.DESCRIPTOR.fields_by_name[name]
    repeated = field.label == FieldDescriptor.LABEL_REPEATED
    bounds = _INTEGER_RANGES.get(field.type)
    for item in value if repeated and isinstance(value, (list, tuple)) else (value,):
        if bounds is not None and isinstance(item, int) and not bounds[0] <= item <= bounds[1]:
            raise UsageError(f"LeaseRequest.{name} must be between {bounds[0]} and {bounds[1]}, got {item}")
    try:
        if repeated:
            getattr(message, name).extend(value)
        else:
            setattr(message, name, value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"LeaseRequest.{name}: {' '.join(str(exc).split())}") from None


def trusted_local_address(address: Address) -> Address:
    """The Unix socket at its real path, once it is sure that only its user, root or bitshare's
    system user can have put it (and its credentials socket) there; raises Denied or Unreachable."""
    owners = paths.daemon_uids()
    try:
        local = Address("unix", path=str(paths.check_socket_path(Path(address.path), owners)))
        # The credentials socket local_token connects to: beside the real socket, not the link.
        paths.check_socket_path(Path(local.credentials_path), owners)
    except FileNotFoundError as exc:
        raise Unreachable(f"cannot reach bitshared at {address}: no socket at {exc.filename}") from None
    return local


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process on the other end of a connected Unix socket, as the kernel says."""
    _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid


def local_token(address: Address, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """Ask the daemon's credentials socket for this user's token (the kernel vouches for our uid).

    The kernel also says who serves the socket: a daemon that is not this user's, root's or
    bitshare's is refused before anything is asked of it.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address.credentials_path)
            served_by = peer_uid(sock)
            if served_by not in paths.daemon_uids():
                raise Denied(
                    f"refusing bitshared at {address}: its socket is served by uid {served_by}, "
                    "not by this user, root or the bitshare user"
                )
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except FileNotFoundError:
        raise Unreachable(f"cannot reach bitshared at {address}: no socket at {address.credentials_path}") from None
    except OSError as exc:
        raise Unreachable(f"cannot reach bitshared at {address}: {exc.strerror or exc}") from None
    try:
        return json.loads(data)["token"]
    except (ValueError, KeyError):
        raise Unreachable(f"bitshared at {address} gave no credentials") from None


class Client:
    """A connection to one daemon. Methods raise :class:`BitshareError` subclasses."""

    def __init__(
        self,
        address: Address,
        token: str = "",
        tls_ca: str = "",
        allow_insecure_tcp: bool = False,
        route: transport.Route | None = None,
    ) -> None:
        """``allow_insecure_tcp``: plaintext (and the token) may go to a TCP daemon off loopback.
        ``route``: a TCP route already planned (a clone reuses its original's resolved address)."""
        self.address = address
        self._credentials = (token, tls_ca, allow_insecure_tcp)
        self._info: pb.ServerInfo | None = None
        self.route: transport.Route | None = None
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.keepalive_time_ms", 10_000),
            # Reconnect quickly after a daemon restart: holders must be back within the lease TTL.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1_000),
        ]
        if address.kind == "unix":
            local = trusted_local_address(address)
            token = local_token(local)
            self.channel = grpc.insecure_channel(local.target, options=options)
        else:
            self.route = route or transport.plan(address, tls_ca, allow_insecure_tcp)
            if self.route.tls:
                credentials = grpc.ssl_channel_credentials(self.route.root_certificates)
                self.channel = grpc.secure_channel(self.route.target, credentials, options=options)
            else:
                self.channel = grpc.insecure_channel(self.route.target, options=options)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.leases = pb_grpc.LeaseServiceStub(self.channel)
        self.admin = pb_grpc.AdminServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    @property
    def credentials(self) -> tuple[str, str, bool]:
        """(token, TLS CA path, insecure TCP allowed) this client was made with; a Unix-socket
        client's token is fetched anew."""
        return self._credentials

    def clone(self) -> Client:
        """A new connection to the same daemon with the same credentials (and resolved address)."""
        return Client(self.address, *self._credentials, route=self.route)

    def explain_unreachable(self) -> str | None:
        """Why a TCP daemon cannot be reached, when TLS is the reason (wrong CA, expired, ...)."""
        if self.route is None:
            return None
        return transport.explain(self.route, str(self.address), CONNECT_TIMEOUT_S)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: Callable[..., T], request: object, timeout: float = CALL_TIMEOUT_S) -> T:
        try:
            return method(request, metadata=self.metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, str(self.address)) from None

    # ----- every caller ----------------------------------------------------------

    def server_info(self, timeout: float = CONNECT_TIMEOUT_S) -> pb.ServerInfo:
        """Ask the daemon now (a health check); :attr:`info` keeps the first answer."""
        self._info = self.call(self.leases.GetServerInfo, pb.GetServerInfoRequest(), timeout)
        return self._info

    @property
    def info(self) -> pb.ServerInfo:
        """What the daemon said of itself and of the caller when first asked (it does not change)."""
        return self._info if self._info is not None else self.server_info()

    def gpus(self) -> list[pb.Gpu]:
        return list(self.call(self.leases.ListGpus, pb.ListGpusRequest()).gpus)

    def request(self, request: LeaseRequest) -> pb.Lease:
        """Ask for a lease: it comes back ACTIVE or QUEUED (or raises NoLease with wait=False)."""
        return self.call(self.leases.RequestLease, request.to_pb())

    def get(self, lease_id: str) -> pb.Lease:
        return self.call(self.leases.GetLease, pb.LeaseRef(lease_id=lease_id))

    def my_leases(self, include_ended: bool = False, slurm_job: str = "") -> list[pb.Lease]:
        asked = pb.ListLeasesRequest(include_ended=include_ended, slurm_job=slurm_job)
        return list(self.call(self.leases.ListLeases, asked).leases)

    def release(self, lease_id: str) -> pb.Lease:
        return self.call(self.leases.ReleaseLease, pb.ReleaseLeaseRequest(lease_id=lease_id))

    def keep_alive(self, lease_ids: list[str]) -> list[pb.Lease]:
        return list(self.call(self.leases.KeepAlive, pb.KeepAliveRequest(lease_ids=lease_ids)).leases)

    def attach(self, lease_id: str, heartbeats: Iterator[pb.AttachRequest]) -> Iterator[pb.LeaseEvent]:
        """Stream the lease's events; every item of ``heartbeats`` is sent after the first message."""

        def requests() -> Iterator[pb.AttachRequest]:
            yield pb.AttachRequest(lease_id=lease_id)
            yield from heartbeats

        return self.leases.AttachLease(requests(), metadata=self.metadata)

    # ----- admins ----------------------------------------------------------------

    def all_leases(self, include_ended: bool = False, slurm_job: str = "") -> list[pb.Lease]:
        asked = pb.ListLeasesRequest(include_ended=include_ended, slurm_job=slurm_job)
        return list(self.call(self.admin.ListAllLeases, asked).leases)

    def queue(self) -> list[pb.Lease]:
        return list(self.call(self.admin.ListQueue, pb.ListLeasesRequest()).leases)

    def resize(self, lease_id: str, fraction: float | None = None, memory_mib: int | None = None) -> pb.Lease:
        request = pb.ResizeLeaseRequest(lease_id=lease_id)
        if fraction is not None:
            request.fraction = fraction
        if memory_mib is not None:
            request.memory_mib = memory_mib
        return self.call(self.admin.ResizeLease, request)

    def revoke(self, lease_id: str, reason: str = "") -> pb.Lease:
        return self.call(self.admin.RevokeLease, pb.RevokeLeaseRequest(lease_id=lease_id, reason=reason))

    def set_priority(self, lease_id: str, priority: int) -> pb.Lease:
        return self.call(self.admin.SetPriority, pb.SetPriorityRequest(lease_id=lease_id, priority=priority))

    def drain(self, gpu_index: int, drained: bool = True) -> pb.Gpu:
        method = self.admin.DrainGpu if drained else self.admin.UndrainGpu
        return self.call(method, pb.GpuRef(index=gpu_index))

    def watch_telemetry(self, min_interval_s: float = 0.5) -> Iterator[pb.TelemetrySnapshot]:
        """Snapshots of the daemon as it changes (an admin stream; ``cancel()`` ends it)."""
        request = pb.WatchTelemetryRequest(min_interval_s=min_interval_s)
        return self.admin.WatchTelemetry(request, metadata=self.metadata)

    def events(self, limit: int = 100, lease_id: str = "") -> list[pb.Event]:
        return list(self.call(self.admin.ListEvents, pb.ListEventsRequest(limit=limit, lease_id=lease_id)).events)


def connect(server: str, token: str = "", tls_ca: str = "", allow_insecure_tcp: bool = False) -> Client:
    """Open a client for ``server`` (``unix:PATH`` or ``HOST:PORT``) and check the daemon answers."""
    try:
        address = parse_address(server)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    client = Client(address, token, tls_ca, allow_insecure_tcp)
    try:
        client.server_info()
    except Unreachable as exc:
        client.close()
        reason = client.explain_unreachable()
        raise (Unreachable(reason) if reason else exc) from None
    except BitshareError:
        client.close()
        raise
    return client


__all__ = ["BitshareError", "Client", "Denied", "LeaseRequest", "Unreachable", "connect"]
