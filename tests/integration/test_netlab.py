"""The emulated network itself (tests/support/netlab.py): the shaper limits, the relay delays and
keeps bytes intact and in order, and nothing it made outlives it. Needs root; skips elsewhere."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from ..support.harness import wait_for
from ..support.netlab import Link, burst_bytes, emulated_link, namespaces, rate_bits, skip_reason

PORT = 5001

# In the server's namespace: answers each connection. "sink": reads to the end and answers the
# sha256 of what came; "echo": sends back each byte as it comes.
SERVER = r"""
import hashlib, socket, sys, threading
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
listener = socket.create_server((host, port))
print("listening", flush=True)
def serve(conn):
    digest = hashlib.sha256()
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        if mode == "echo":
            conn.sendall(data)
        else:
            digest.update(data)
    if mode == "sink":
        conn.sendall(digest.hexdigest().encode())
    conn.close()
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# In the client's namespace: sends argv[3] bytes (a seeded pattern) and prints the answer and
# the seconds it took; or ("ping") times argv[3] one-byte round trips and prints the shortest.
CLIENT = r"""
import random, socket, sys, time
mode, host, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = socket.create_connection((host, int(sys.argv[4])))
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "ping":
    trips = []
    for _ in range(size):
        started = time.perf_counter()
        conn.sendall(b"x")
        assert conn.recv(1) == b"x"
        trips.append(time.perf_counter() - started)
    print(min(trips))
else:
    data = random.Random(7).randbytes(size)
    started = time.perf_counter()
    conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := conn.recv(100):
        answer += chunk
    print(answer.decode(), time.perf_counter() - started)
"""


@pytest.fixture(scope="module", autouse=True)
def _needs_the_lab() -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)


def serve(link: Link, mode: str, port: int = PORT) -> subprocess.Popen:
    proc = subprocess.Popen(
        link.server_cmd([sys.executable, "-c", SERVER, mode, link.server_ip, str(port)]),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
    return proc


def client(link: Link, mode: str, size: int, host: str, port: int = PORT) -> list[str]:
    argv = [sys.executable, "-c", CLIENT, mode, host, str(size), str(port)]
    done = subprocess.run(link.client_cmd(argv), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def pattern_digest(size: int) -> str:
    return hashlib.sha256(random.Random(7).randbytes(size)).hexdigest()


def ours() -> set[str]:
    """This process's namespaces (others on the machine may be making theirs meanwhile)."""
    return {name for name in namespaces() if f"-{os.getpid()}x" in name}


@pytest.fixture
def lab() -> Iterator[None]:
    assert not ours()
    yield
    assert not ours()


def test_the_shaper_holds_a_socket_to_the_rate(lab: None) -> None:
    size, rate = 32 * 1024 * 1024, "200mbit"
    with emulated_link(rate=rate) as link:
        serve(link, "sink")
        digest, seconds = client(link, "sink", size, link.server_ip)  # straight over the veth
    assert digest == pattern_digest(size)
    # A lower bound the token bucket guarantees: all but one burst's bytes go at the rate.
    assert float(seconds) >= (size - burst_bytes(rate)) * 8 / rate_bits(rate)


def test_the_relay_delays_each_way_and_keeps_the_bytes_in_order(lab: None) -> None:
    size = 8 * 1024 * 1024
    with emulated_link(rate="1gbit", delay_ms=20) as link:
        serve(link, "echo")
        serve(link, "sink", PORT + 1)
        link.forward(PORT)
        link.forward(PORT + 1)
        [shortest] = client(link, "ping", 5, link.dial_ip)
        digest, _ = client(link, "sink", size, link.dial_ip, PORT + 1)
    assert float(shortest) >= 2 * 0.020
    assert digest == pattern_digest(size)


def test_nothing_is_left_after_the_link_also_when_its_body_raised(lab: None) -> None:
    left: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="the body failed"), emulated_link(rate="1gbit", delay_ms=1) as link:
        server = serve(link, "echo")
        link.forward(PORT)
        left.update(
            namespaces={link.server_ns, link.client_ns},
            pids=[server.pid, *(relay.pid for relay in link.relays.values())],
        )
        assert left["namespaces"] <= namespaces()
        raise RuntimeError("the body failed")
    assert not left["namespaces"] & namespaces()
    for pid in left["pids"]:  # the server, left running by the body, was ended too; the relay with it
        wait_for(lambda pid=pid: not alive(pid), 15, f"process {pid} to be gone")
    devices = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "bss" not in devices and "bsc" not in devices  # the veth pair never was in this namespace


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_bad_rate_is_refused_before_anything_is_made(lab: None) -> None:
    with pytest.raises(ValueError, match="not a rate"), emulated_link(rate="fast"):
        pass
