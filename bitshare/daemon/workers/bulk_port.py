"""The daemon's bulk TCP port: remote clients' raw array bytes, handed to their session's worker.

A client on another host connects and sends its session's route (16 random bytes that name the
session and grant nothing); the daemon hands the connection itself to that session's worker
(SCM_RIGHTS), which makes the TLS handshake with the daemon's certificate and checks the
session's secret. The daemon reads no byte past the route, so array bytes move between the
client and the worker with nothing in between, as over the Unix data socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import socket

from ... import log

ROUTE_BYTES = 16
ROUTE_TIMEOUT_S = 5.0  # a connection that does not name its session in this time is closed
MAX_PENDING = 64  # connections waiting to name their session; more are closed at once
MAX_PENDING_PER_PEER = 8  # of those, from one IPv4 address or IPv6 /64: one peer cannot fill the port


class BulkPort:
    """The bulk listeners (one per TCP listener's host, all on one port) and the sessions'
    routes to their workers."""

    def __init__(self, tls_cert: str = "", tls_key: str = "") -> None:
        self.tls_cert, self.tls_key = tls_cert, tls_key  # the workers' TLS; "" for plaintext
        self.port = 0  # the port bound, once started
        self._listeners: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._pending_of: dict[str, int] = {}  # per peer (_peer_key)
        self._routes: dict[bytes, socket.socket] = {}

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    async def start(self, hosts: list[str], port: int) -> None:
        """Listen on ``port`` (0: any free one, then the same everywhere) of each address the
        hosts name, as their gRPC listeners do ("localhost": 127.0.0.1 and ::1)."""
        for family, address in _addresses(hosts):
            # "::" takes IPv4 too, as the gRPC listener on it does (create_server makes IPv6 only).
            dualstack = address == "::" and socket.has_dualstack_ipv6()
            try:
                listener = socket.create_server(
                    (address, port or self.port), family=family, backlog=128, dualstack_ipv6=dualstack
                )
            except OSError as exc:  # without create_server's "(while attempting to bind on address ...)"
                if address == "::1" and exc.errno == errno.EADDRNOTAVAIL and "::1" not in hosts:
                    continue  # only "localhost" named it, on a host without IPv6
                raise OSError(exc.errno, os.strerror(exc.errno) if exc.errno else str(exc)) from None
            listener.setblocking(False)
            self._listeners.append(listener)
            self.port = listener.getsockname()[1]
            self._accepting.append(asyncio.ensure_future(self._accept(listener)))

    def add_route(self, route: bytes, handover: socket.socket) -> None:
        """Connections that name ``route`` go to the worker at the other end of ``handover``."""
        handover.setblocking(False)
        self._routes[route] = handover

    def drop_route(self, route: bytes) -> None:
        handover = self._routes.pop(route, None)
        if handover is not None:
            handover.close()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(listener)
            except OSError as exc:  # out of descriptors, say: the port goes on after a breath
                log.warning("remote.bulk_accept", error=exc)
                await asyncio.sleep(0.1)
                continue
            key = _peer_key(peer[0])
            if len(self._pending) >= MAX_PENDING or self._pending_of.get(key, 0) >= MAX_PENDING_PER_PEER:
                conn.close()
                continue
            self._pending_of[key] = self._pending_of.get(key, 0) + 1
            task = asyncio.ensure_future(self._route(conn))
            self._pending.add(task)
            task.add_done_callback(lambda done, key=key: self._done(done, key))

    def _done(self, task: asyncio.Task[None], key: str) -> None:
        self._pending.discard(task)
        left = self._pending_of.pop(key) - 1
        if left:
            self._pending_of[key] = left

    async def _route(self, conn: socket.socket) -> None:
        """Read the route, exactly (the TLS handshake behind it is the worker's), and hand over."""
        with conn:
            conn.setblocking(False)
            try:
                route = await asyncio.wait_for(_read_exactly(conn, ROUTE_BYTES), ROUTE_TIMEOUT_S)
            except (asyncio.TimeoutError, OSError, EOFError):
                return
            handover = self._routes.get(route)
            if handover is None:
                return
            with contextlib.suppress(OSError):  # the worker is gone, or not reading: the client falls back
                socket.send_fds(handover, [b"c"], [conn.fileno()])

    async def close(self) -> None:
        for task in (*self._accepting, *self._pending):
            task.cancel()
        for task in (*self._accepting, *self._pending):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self.port = 0  # offered to no session (a start that failed part way had set it)
        for route in list(self._routes):
            self.drop_route(route)


def _peer_key(address: str) -> str:
    """Whose connection this is, for the per-peer limit: an IPv4 address (also one mapped into
    IPv6), or an IPv6 address's /64, which one host commonly has to itself."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _addresses(hosts: list[str]) -> list[tuple[socket.AddressFamily, str]]:
    """The addresses to listen on for ``hosts``, each once: a host's name stands for all its
    addresses, and a wildcard for the addresses it covers (one port cannot be bound twice)."""
    found: dict[tuple[socket.AddressFamily, str], None] = {}
    for host in hosts:
        if host == "localhost":  # gRPC binds both loopbacks for it, whatever the resolver says
            found.update({(socket.AF_INET, "127.0.0.1"): None, (socket.AF_INET6, "::1"): None})
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host}: {exc.strerror}") from None
        for family, _, _, _, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                found[(family, str(sockaddr[0]))] = None
    if (socket.AF_INET6, "::") in found and socket.has_dualstack_ipv6():
        return [(socket.AF_INET6, "::")]
    if (socket.AF_INET, "0.0.0.0") in found:
        return [(socket.AF_INET, "0.0.0.0"), *(a for a in found if a[0] == socket.AF_INET6)]
    return list(found)


async def _read_exactly(conn: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        more = await loop.sock_recv(conn, size - len(data))
        if not more:
            raise EOFError
        data += more
    return data
