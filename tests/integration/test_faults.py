"""Faults: the daemon killed with SIGKILL at random moments, 20 times, while 50 clients request,
hold, resize and release leases. Afterwards nothing granted is lost, nothing is granted twice,
the books balance, and every client got either its answer or a clear error."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

from bitshare.client.connection import LeaseRequest, connect
from bitshare.errors import BitshareError, NoLease, Unreachable
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, bitshare_cmd, free_port, make_token, wait_for

CLIENTS, RESTARTS = 50, 20
SIZES_MIB = (512, 1024, 2048, 4096)
ANSWER_WITHIN_S = 60.0
T = TypeVar("T")


@dataclass
class Ledger:
    """What one client was told, lease by lease."""

    held: dict[str, int] = field(default_factory=dict)  # lease id -> MiB, as last acknowledged
    released: set[str] = field(default_factory=set)
    unclear: list[str] = field(default_factory=list)  # errors that were not BitshareErrors
    errors: int = 0  # clear errors seen (daemon away), each retried until answered


def answered(call: Callable[[], T], book: Ledger) -> T:
    """The call's answer, retrying while the daemon is away (the same request id each time)."""
    deadline = time.monotonic() + ANSWER_WITHIN_S
    while True:
        try:
            return call()
        except Unreachable:
            book.errors += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def client_loop(server: str, seed: int, stop: threading.Event, book: Ledger) -> None:
    draw = random.Random(seed)
    try:
        with connect(server) as client:
            while not stop.is_set():
                request = LeaseRequest(memory_mib=draw.choice(SIZES_MIB), ttl_s=600, wait=False)
                try:
                    lease = answered(lambda r=request: client.request(r), book)
                except NoLease:
                    time.sleep(draw.uniform(0, 0.05))
                    continue
                book.held[lease.id] = lease.allocations[0].memory_mib
                time.sleep(draw.uniform(0, 0.1))
                if draw.random() < 0.3:
                    half = book.held[lease.id] // 2
                    resized = answered(lambda i=lease.id, m=half: client.resize(i, memory_mib=m), book)
                    book.held[lease.id] = resized.allocations[0].memory_mib
                if draw.random() < 0.8:
                    answered(lambda i=lease.id: client.release(i), book)  # idempotent: retried safely
                    book.released.add(lease.id)
                    del book.held[lease.id]
    except BitshareError as exc:
        book.unclear.append(f"gave up: {exc!r}")  # clear, but no client should have to give up
    except Exception as exc:
        book.unclear.append(repr(exc))


def test_sigkill_at_random_moments_loses_nothing_and_grants_nothing_twice(make_daemon) -> None:
    daemon: Daemon = make_daemon("--simulate", "4x16GiB")
    stop = threading.Event()
    books = [Ledger() for _ in range(CLIENTS)]
    threads = [
        threading.Thread(target=client_loop, args=(daemon.server, n, stop, books[n]), daemon=True)
        for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    killer = random.Random(2026)
    for _ in range(RESTARTS):
        time.sleep(killer.uniform(0.1, 0.8))
        daemon.kill9()
        time.sleep(killer.uniform(0, 0.3))
        daemon.restart()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=ANSWER_WITHIN_S + 30)
    assert not any(thread.is_alive() for thread in threads), "a client never got an answer"
    assert [u for book in books for u in book.unclear] == []
    assert sum(book.errors for book in books) > 0, "no client ever saw the daemon away: the test tested nothing"
    assert sum(len(b.released) + len(b.held) for b in books) >= 100, "too few leases to mean anything"

    with daemon.client() as client:
        live = {lease.id: lease for lease in client.all_leases() if lease.state == pb.LEASE_STATE_ACTIVE}
        gpus = client.gpus()
        held = {lease_id: mib for book in books for lease_id, mib in book.held.items()}
        # Nothing granted is lost: every lease a client holds is active, at the size it was told.
        assert {i: live[i].allocations[0].memory_mib for i in held if i in live} == held
        assert set(held) <= set(live)
        # Nothing released comes back.
        released = set().union(*(book.released for book in books))
        assert not released & set(live)
        # Nothing is granted twice, and the books balance on every GPU.
        for gpu in gpus:
            on_it = sum(a.memory_mib for lease in live.values() for a in lease.allocations if a.gpu_index == gpu.index)
            assert gpu.granted_mib == on_it <= gpu.capacity_mib
            assert gpu.free_mib == gpu.capacity_mib - gpu.granted_mib
        # Leases that no client knows of are the ones whose grant answer died with the daemon
        # (the client retried with the same request id and got that lease back, so there are none).
        assert set(live) == set(held)


class Proxy:
    """A loopback TCP relay to the daemon that can be cut, like a network that goes away."""

    def __init__(self, target_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)

    def cut(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accepting thread (close alone would not)
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_a_client_whose_network_is_cut_loses_its_lease_at_the_ttl_and_ends_its_command(
    make_daemon, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.toml"
    token = make_token(tokens, "remote-job", "client")
    port = free_port()
    daemon: Daemon = make_daemon(
        "--simulate", "1x16GiB", "--lease-ttl", "3", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(tokens)
    )
    proxy = Proxy(port)
    marker = tmp_path / "child.pid"
    program = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    holder = subprocess.Popen(
        bitshare_cmd("--server", f"127.0.0.1:{proxy.port}", "--token", token, "run", "-p", "0.25", "--local",
                     "--", sys.executable, "-c", program),
        env=daemon.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: marker.exists() and marker.read_text(), 20, "the command to start")
        child = int(marker.read_text())
        with daemon.client() as client:
            (lease,) = client.all_leases()
            proxy.cut()
            cut_at = time.monotonic()
            wait_for(lambda: client.get(lease.id).state == pb.LEASE_STATE_EXPIRED, 15, "the lease to expire")
            assert time.monotonic() - cut_at >= 2.0  # the TTL (3 s), less the last heartbeat's age
            assert client.gpus()[0].granted_mib == 0
        holder.wait(timeout=30)  # the holder gave up on its lease and ended its command
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        assert holder.returncode != 0 and "lease" in holder.stderr.read().lower()
    finally:
        holder.kill()
        proxy.cut()
