"""Remote sessions over TCP on this host's loopback: array bytes on the daemon's bulk port
(plaintext and TLS), its secret and route, a transfer cut part way, a bulk port the client
cannot reach, the bulk_port setting, and the addresses the bulk port listens on."""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bitshare.client.connection import LeaseRequest, connect
from bitshare.client.transport import Route
from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.remote.bulk import DataSocket

from ..support.harness import (
    Daemon,
    assert_refused_in_one_line,
    free_port,
    make_token,
    refused_start,
    run_cli,
    wait_for,
)
from ..support.remote_wire import RawSession, results
from .test_client_security import make_ca, make_server_cert, non_loopback_address, tls_config

Op = pb.ROp
MIB = 1024 * 1024
BULK_LINE = re.compile(r"daemon\.bulk_port port=(\d+) tls=(True|False)")

ROUND_TRIP = """
import numpy, cupy
from bitshare.remote import session
a = numpy.arange(524288.0)  # 4 MiB up, 4 MiB down
x = cupy.asarray(a)
numpy.testing.assert_array_equal((x * 2 + 1).get(), a * 2 + 1)
print(session.current().bulk_path, float(x.sum()) == a.sum())
"""


@dataclass
class Site:
    """A plaintext daemon on 127.0.0.1 and a TLS one on localhost, each with a bulk port, and
    what a client needs for them."""

    plain: Daemon
    plain_port: int
    tls: Daemon
    tls_port: int
    ca: Path
    token: str
    tokens: Path

    def env(self, daemon: Daemon, **more: str) -> dict[str, str]:
        return {**daemon.env, "BITSHARE_TOKEN": self.token, **more}

    def run(self, daemon: Daemon, program: str, *, server: str = "", timeout: float = 90):
        """A remote CuPy or PyTorch program through ``bitshare run --remote`` over TCP."""
        tls = daemon is self.tls
        server = server or (f"localhost:{self.tls_port}" if tls else f"127.0.0.1:{self.plain_port}")
        env = self.env(daemon, **({"BITSHARE_TLS_CA": str(self.ca)} if tls else {}))
        args = ("run", "--remote", "-p", "0.25", "--", sys.executable, "-c", program)
        return run_cli(daemon, *args, server=server, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("tcp")
    tokens = tmp / "tokens.toml"
    token = make_token(tokens, "alice", "client")
    ca = make_ca(tmp, "site-ca")
    config = tls_config(tmp, "tls", make_server_cert(tmp, "server", ca, san="DNS:localhost,IP:::1"))
    daemons = []
    try:
        plain_port, tls_port = free_port(), free_port()
        common = ["--simulate", "1x16GiB", "--tokens-file", str(tokens)]
        for name, args in (
            ("plain", [*common, "--listen", f"127.0.0.1:{plain_port}"]),
            ("tls", [*common, "--config", str(config), "--listen", f"localhost:{tls_port}"]),
        ):
            (tmp / name).mkdir()
            daemons.append(Daemon(tmp / name, args).start())
        yield Site(daemons[0], plain_port, daemons[1], tls_port, ca[1], token, tokens)
    finally:
        for daemon in daemons:
            daemon.stop()


@contextlib.contextmanager
def raw_session(client, memory_mib: int = 64) -> Iterator[RawSession]:
    """A session of a lease of its own, over the client's TCP; the lease is released after."""
    lease = client.request(LeaseRequest(memory_mib=memory_mib))
    raw = RawSession(client, lease.id)
    try:
        yield raw
    finally:
        raw.close()
        client.release(lease.id)


def hung_up(sock: socket.socket) -> bool:
    """Whether the other end closed ``sock`` (a reset counts: bytes it never read were left)."""
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:  # still open, waiting for more
        return False


def stream_upload(raw: RawSession, handle: int, array: np.ndarray) -> None:
    meta = pb.RMeta(shape=array.shape, dtype=array.dtype.str)
    raw.send(pb.RemoteRequest(batch=pb.RBatch(ops=[Op(kind=Op.KIND_UPLOAD, out=[handle], meta=meta)])))
    data = array.tobytes()
    for offset in range(0, len(data), 4 * MIB):
        raw.send(pb.RemoteRequest(chunk=pb.RChunk(handle=handle, offset=offset, data=data[offset : offset + 4 * MIB])))


def direct_upload(raw: RawSession, handle: int, array: np.ndarray) -> None:
    """The op of a direct upload, in a synced batch whose answer the caller reads."""
    meta = pb.RMeta(shape=array.shape, dtype=array.dtype.str)
    raw.seq += 1
    op = Op(kind=Op.KIND_UPLOAD, out=[handle], meta=meta, direct=True)
    raw.send(pb.RemoteRequest(batch=pb.RBatch(ops=[op], sync=True, seq=raw.seq)))


def answer(raw: RawSession) -> pb.RResult:
    for reply in raw.call:
        if reply.WhichOneof("kind") == "result":
            return reply.result
    raise AssertionError("the session ended without an answer")


def stream_download(raw: RawSession, handle: int, dtype: str) -> np.ndarray:
    """``handle``'s array in chunks on the stream (checks the worker answers without error)."""
    replies = raw.sync(Op(kind=Op.KIND_DOWNLOAD, args=[pb.RValue(handle=handle)]))
    [result] = results(replies)
    assert not result.HasField("error"), result.error
    data = b"".join(r.chunk.data for r in replies if r.WhichOneof("kind") == "chunk")
    return np.frombuffer(data, dtype=dtype)


def direct_download(raw: RawSession, conn: socket.socket, handle: int) -> np.ndarray:
    raw.seq += 1
    op = Op(kind=Op.KIND_DOWNLOAD, args=[pb.RValue(handle=handle)], direct=True)
    raw.send(pb.RemoteRequest(batch=pb.RBatch(ops=[op], sync=True, seq=raw.seq)))
    conn.settimeout(30)
    size = int.from_bytes(read_exactly(conn, 4), "big")
    meta = pb.RMeta.FromString(read_exactly(conn, size))
    host = np.frombuffer(read_exactly(conn, int(np.prod(meta.shape)) * np.dtype(meta.dtype).itemsize), meta.dtype)
    result = answer(raw)
    assert not result.HasField("error"), result.error
    return host


def assert_round_trip(raw: RawSession, conn: socket.socket, handle: int, values: np.ndarray) -> None:
    """``values`` up and back down over the bulk connection ``conn``, unchanged."""
    direct_upload(raw, handle, values)
    conn.sendall(values.tobytes())
    result = answer(raw)
    assert not result.HasField("error"), result.error
    np.testing.assert_array_equal(direct_download(raw, conn, handle), values)


def read_exactly(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        more = conn.recv(size - len(data))
        assert more, "the worker closed the data socket"
        data += more
    return bytes(data)


# ----- arrays over the bulk port ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "tls"])
def test_a_program_moves_its_arrays_over_the_bulk_port(site: Site, kind: str) -> None:
    daemon = site.tls if kind == "tls" else site.plain
    done = site.run(daemon, ROUND_TRIP)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [kind, "True"]
    assert "bulk data port" not in done.stderr, done.stderr
    [(port, tls)] = BULK_LINE.findall(daemon.log())
    if kind == "tcp":
        assert (int(port), tls) == (site.plain_port + 1, "False")  # by default the listener's port + 1
    else:
        assert (int(port), tls) == (site.tls_port + 1, "True")  # TLS as the gRPC listener is


# ----- the route and the secret ---------------------------------------------------------------


def test_a_wrong_secret_is_not_admitted_and_the_right_one_still_gets_in(site: Site) -> None:
    with connect(f"127.0.0.1:{site.plain_port}", site.token) as client, raw_session(client) as raw:
        described = raw.session
        assert described.data_port and len(described.data_route) == 16 and len(described.secret) == 32
        assert not described.data_socket and not described.data_tls
        stranger = raw.open_bulk("127.0.0.1", secret=bytes(32))
        assert hung_up(stranger)  # the worker closed it
        owner = raw.open_bulk("127.0.0.1")
        expected = np.arange(1024, dtype=np.float32)
        direct_upload(raw, 1, expected)
        with contextlib.suppress(OSError):  # what the stranger sends goes nowhere
            stranger.sendall(np.ones(1024, dtype=np.float32).tobytes())
        owner.sendall(expected.tobytes())
        result = answer(raw)
        assert not result.HasField("error"), result.error
        np.testing.assert_array_equal(stream_download(raw, 1, "<f4"), expected)
        late = raw.open_bulk("127.0.0.1")  # the right secret, but the channel is taken: nobody else gets in
        assert hung_up(late)
        np.testing.assert_array_equal(direct_download(raw, owner, 1), expected)
        for sock in (stranger, owner, late):
            sock.close()


def test_a_secret_is_refused_on_another_sessions_route_and_an_ended_route_is_closed(site: Site) -> None:
    with connect(f"127.0.0.1:{site.plain_port}", site.token) as client, raw_session(client) as b:
        with raw_session(client) as a:
            assert a.session.data_route != b.session.data_route
            replayed = b.open_bulk("127.0.0.1", secret=a.session.secret)
            assert hung_up(replayed)
            a.sync()  # A's worker is up and answering
        # A's session is over: its route leads nowhere now.
        wait_for(lambda: f"remote.ended lease={a.lease_id}" in site.plain.log(), 30, "A's session to end")
        for late_bytes in (a.session.data_route, a.session.data_route + a.session.secret):
            with socket.create_connection(("127.0.0.1", a.session.data_port), timeout=10) as late:
                late.sendall(late_bytes)
                assert hung_up(late)  # the daemon closed it: no worker has that route
        owner = b.open_bulk("127.0.0.1")  # B's own secret still gets in
        assert_round_trip(b, owner, 1, np.arange(8.0))
        owner.close()
        replayed.close()


# ----- a transfer cut part way ------------------------------------------------------------------


def test_an_upload_cut_part_way_fails_clearly_and_the_session_goes_on(site: Site) -> None:
    with connect(f"127.0.0.1:{site.plain_port}", site.token) as client, raw_session(client, 128) as raw:
        conn = raw.open_bulk("127.0.0.1")
        big = np.arange(2 * MIB, dtype=np.float64)  # 16 MiB
        direct_upload(raw, 1, big)
        conn.sendall(memoryview(big).cast("B")[: 8 * MIB])
        conn.close()  # half of it sent
        result = answer(raw)
        assert result.HasField("error"), result
        assert "data socket" in result.error.message and "\n" not in result.error.message, result.error
        small = np.arange(100_000, dtype=np.float64)
        stream_upload(raw, 2, small)  # the worker answers the next batch, over the stream
        np.testing.assert_array_equal(stream_download(raw, 2, "<f8"), small)
    # The daemon serves other sessions.
    done = site.run(site.plain, ROUND_TRIP)
    assert done.returncode == 0 and done.stdout.split() == ["tcp", "True"], done.stderr


def test_a_download_cut_part_way_leaves_the_session_usable_over_the_stream(site: Site) -> None:
    with connect(f"127.0.0.1:{site.plain_port}", site.token) as client, raw_session(client, 128) as raw:
        conn = raw.open_bulk("127.0.0.1")
        big = np.arange(2 * MIB, dtype=np.float64)  # 16 MiB: more than the sockets' buffers hold
        stream_upload(raw, 1, big)
        raw.seq += 1
        op = Op(kind=Op.KIND_DOWNLOAD, args=[pb.RValue(handle=1)], direct=True)
        raw.send(pb.RemoteRequest(batch=pb.RBatch(ops=[op], sync=True, seq=raw.seq)))
        conn.settimeout(30)
        read_exactly(conn, 4 * MIB)  # the header and part of the bytes
        conn.close()
        answer(raw)  # (an error, or none where the kernel took all the bytes before the close)
        np.testing.assert_array_equal(stream_download(raw, 1, "<f8"), big)
        direct_upload(raw, 2, np.arange(4.0))  # the data socket is gone for good: said, not waited on
        refused = answer(raw)
        assert "data socket" in refused.error.message, refused
        [result] = results(raw.sync(Op(kind=Op.KIND_QUERY, name="item", args=[pb.RValue(handle=1)])))
        assert result.error.type == "ValueError"  # answered: the worker goes on


CUT_PROGRAM = """
import socket
import numpy, cupy
from bitshare.remote import session

class CutHalfWay:
    '''The data socket, cut after half of the next upload's bytes.'''
    def __init__(self, sock):
        self.sock = sock
    def sendall(self, data):
        data = memoryview(data).cast("B")
        self.sock.sendall(data[: len(data) // 2])
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.sendall(data[len(data) // 2 :])
    def __getattr__(self, name):
        return getattr(self.sock, name)

x = cupy.arange(4)  # the session is open
opened = session.current()
opened._data._sock = CutHalfWay(opened._data._sock)
try:
    cupy.asarray(numpy.arange(2 * 1024 * 1024, dtype=numpy.float64))
    print("uploaded")
except Exception as exc:
    print("error:", type(exc).__name__, exc)
a = numpy.arange(524288.0)
y = cupy.asarray(a)
numpy.testing.assert_array_equal((y * 2).get(), a * 2)
print("then", opened.bulk_path, float(x.sum()))
"""


def test_a_program_whose_data_socket_is_cut_gets_one_line_and_goes_on(site: Site) -> None:
    done = site.run(site.plain, CUT_PROGRAM)
    assert done.returncode == 0, done.stderr
    error, then = done.stdout.splitlines()
    assert error.startswith("error: ") and "data socket" in error, error
    assert then == "then stream 6.0"


# ----- a bulk port the client cannot reach -------------------------------------------------------


class Forwarder:
    """A TCP relay on ``host``: each connection is piped to ``target`` (a thread per direction)."""

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.server = socket.create_server((host, 0))
        self.port = self.server.getsockname()[1]
        self.target = target
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()


def test_a_client_that_cannot_reach_the_bulk_port_uses_the_stream_and_says_so_once(site: Site) -> None:
    forwarder = Forwarder("127.0.0.2", ("127.0.0.1", site.plain_port))
    try:
        done = site.run(site.plain, ROUND_TRIP, server=f"127.0.0.2:{forwarder.port}")
    finally:
        forwarder.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stream", "True"]
    [line] = done.stderr.splitlines()  # exactly one line, and none other
    assert line.startswith(f"bitshare: the bulk data port 127.0.0.2:{site.plain_port + 1} cannot be used ("), line
    assert line.endswith("array data goes on the session's stream, which is slower"), line


# ----- TLS -------------------------------------------------------------------------------------------


def test_the_tls_bulk_port_admits_no_plaintext(site: Site) -> None:
    with connect(f"localhost:{site.tls_port}", site.token, tls_ca=str(site.ca)) as client, raw_session(client) as raw:
        assert raw.session.data_tls and raw.session.data_port == site.tls_port + 1
        plain = raw.open_bulk("127.0.0.1")  # the route, then the secret in plaintext
        assert hung_up(plain)
        owner = raw.open_bulk("localhost", tls_ca=str(site.ca))  # the secret was not taken: TLS gets in
        assert_round_trip(raw, owner, 1, np.arange(16.0))
        owner.close()
        plain.close()


def test_connections_that_name_the_route_and_stall_do_not_keep_the_owner_out(site: Site) -> None:
    """Someone on the path sees the route (it goes before TLS): connections of theirs that name
    it and then send nothing do not hold up the client's own handshake."""
    server = f"localhost:{site.tls_port}"
    with connect(server, site.token, tls_ca=str(site.ca)) as client, raw_session(client) as raw:
        stalled = [socket.create_connection(("127.0.0.1", raw.session.data_port)) for _ in range(3)]
        for sock in stalled:
            sock.sendall(raw.session.data_route)  # and nothing more: no TLS handshake
        data = DataSocket.open_tcp(raw.session, raw.lease_id, client.route)  # as a program's client does
        try:
            direct_upload(raw, 1, np.arange(16.0))
            data.send(memoryview(np.arange(16.0)).cast("B"))
            assert not answer(raw).HasField("error")
            np.testing.assert_array_equal(stream_download(raw, 1, "<f8"), np.arange(16.0))
        finally:
            data.close()
            for sock in stalled:
                sock.close()


def test_idle_connections_from_one_address_do_not_fill_the_bulk_port_for_others(site: Site) -> None:
    """Anyone who reaches the port can open connections that never name a session; those of
    one address are few at a time, so the others' still get in."""
    with connect(f"127.0.0.1:{site.plain_port}", site.token) as client, raw_session(client) as raw:
        idle = []
        for _ in range(80):  # more than the port keeps waiting in all
            sock = socket.socket()
            sock.bind(("127.0.0.5", 0))
            sock.connect(("127.0.0.1", raw.session.data_port))
            idle.append(sock)
        try:
            wait_for(lambda: hung_up(idle[-1]), 10, "the daemon to close the address's excess connections")
            owner = raw.open_bulk("127.0.0.1")
            assert_round_trip(raw, owner, 1, np.arange(16.0))
            owner.close()
        finally:
            for sock in idle:
                sock.close()


def test_a_tls_client_sends_nothing_to_a_plaintext_bulk_port() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    secret = b"s" * 32
    offered = pb.RSession(data_port=port, data_route=b"r" * 16, data_tls=False, secret=secret)
    with listener:
        with pytest.raises(OSError, match="plaintext bulk data where its gRPC is TLS"):
            DataSocket.open_tcp(offered, "lease-1", Route("127.0.0.1", 1, True, b"unused"))
        offered.data_tls = True  # and the other way round: no TLS roots for a TLS bulk port
        with pytest.raises(OSError, match="no TLS roots"):
            DataSocket.open_tcp(offered, "lease-1", Route("127.0.0.1", 1, False))
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected: nothing was sent


def test_plaintext_tcp_off_loopback_is_refused_at_start(tmp_path: Path) -> None:
    host = non_loopback_address()
    done = refused_start("--listen", f"{host}:{free_port()}", "--state-dir", str(tmp_path / "state"))
    assert_refused_in_one_line(done, "allow_insecure_tcp")


# ----- the bulk_port setting --------------------------------------------------------------------


def test_a_bulk_port_named_but_in_use_refuses_the_start(site: Site, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        args = ["--listen", f"127.0.0.1:{free_port()}", "--bulk-port", str(port), "--simulate", "1x16GiB"]
        done = refused_start(*args, "--state-dir", str(tmp_path / "state"), "--tokens-file", str(site.tokens))
    assert done.returncode == 1, done.stderr  # as a gRPC listener that cannot bind is refused
    assert "Traceback" not in done.stderr, done.stderr
    line = done.stderr.strip().splitlines()[-1]  # after the start's log lines
    assert line == f"bitshared: error: cannot listen for bulk data on port {port} (bulk_port): Address already in use"


def listener_with_next_port_taken(host: str = "127.0.0.1") -> tuple[int, socket.socket]:
    """A free port whose next port is held by a listener here on ``host``."""
    for _ in range(50):
        port = free_port()
        with contextlib.suppress(OSError):
            return port, socket.create_server((host, port + 1))
    raise AssertionError("no free port with its next port free")


@pytest.mark.parametrize("setting", ["default, next port taken", "off"])
def test_without_a_bulk_port_remote_works_over_the_stream_silently(site: Site, tmp_path: Path, setting: str) -> None:
    if setting == "off":
        port, taken = free_port(), contextlib.nullcontext()
        args = ["--bulk-port", "0"]
    else:
        port, taken = listener_with_next_port_taken()
        args = []
    with taken:
        daemon = Daemon(tmp_path, ["--simulate", "1x16GiB", "--tokens-file", str(site.tokens)])
        daemon.args += ["--listen", f"127.0.0.1:{port}", *args]
        daemon.start()
        try:
            env = {**daemon.env, "BITSHARE_TOKEN": site.token}
            command = ("run", "--remote", "-p", "0.25", "--", sys.executable, "-c", ROUND_TRIP)
            done = run_cli(daemon, *command, server=f"127.0.0.1:{port}", env=env, timeout=90)
        finally:
            daemon.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stream", "True"]
    assert done.stderr == ""  # the daemon offered no bulk port: nothing to say
    log = daemon.log()
    assert "daemon.bulk_port" not in log
    warnings = [line for line in log.splitlines() if "daemon.no_bulk_port" in line]
    if setting == "off":
        assert warnings == []
    else:
        [warning] = warnings
        assert f'port={port + 1} detail="Address already in use; set bulk_port to choose another"' in warning


# ----- PyTorch -------------------------------------------------------------------------------------

TORCH_ROUND_TRIP = """
import torch
from bitshare.remote import session
x = torch.arange(1_000_000, dtype=torch.float32)  # 4 MB
y = x.to("cuda")
back = (y * 2).cpu()
print(session.current().bulk_path, torch.equal(back, x * 2), torch.equal(y.cpu(), x))
"""


def test_a_torch_tensor_goes_to_cuda_and_back_over_tls(site: Site) -> None:
    pytest.importorskip("torch")
    done = site.run(site.tls, TORCH_ROUND_TRIP, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tls", "True", "True"]


# ----- where the bulk port listens ------------------------------------------------------------


def test_a_listener_on_all_addresses_takes_bulk_data_over_ipv4_too(site: Site, tmp_path: Path) -> None:
    """A gRPC listener on [::] answers IPv4 clients too; so does the bulk port beside it."""
    port = free_port()
    args = ["--simulate", "1x16GiB", "--tokens-file", str(site.tokens), "--allow-insecure-tcp"]
    daemon = Daemon(tmp_path, [*args, "--listen", f"[::]:{port}"]).start()
    try:
        env = {**daemon.env, "BITSHARE_TOKEN": site.token}
        command = ("run", "--remote", "-p", "0.25", "--", sys.executable, "-c", ROUND_TRIP)
        done = run_cli(daemon, *command, server=f"127.0.0.1:{port}", env=env, timeout=90)
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tcp", "True"], done.stderr


def test_a_listener_named_by_a_host_name_takes_bulk_data_on_each_of_its_addresses(site: Site) -> None:
    """The TLS daemon listens on localhost: gRPC on 127.0.0.1 and ::1, and the bulk port too."""
    done = site.run(site.tls, ROUND_TRIP, server=f"[::1]:{site.tls_port}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tls", "True"], done.stderr


def test_two_listeners_on_one_address_share_one_bulk_port(site: Site, tmp_path: Path) -> None:
    first, second = free_port(), free_port()
    args = ["--simulate", "1x16GiB", "--tokens-file", str(site.tokens)]
    daemon = Daemon(tmp_path, [*args, "--listen", f"127.0.0.1:{first}", "--listen", f"127.0.0.1:{second}"]).start()
    try:
        env = {**daemon.env, "BITSHARE_TOKEN": site.token}
        command = ("run", "--remote", "-p", "0.25", "--", sys.executable, "-c", ROUND_TRIP)
        done = run_cli(daemon, *command, server=f"127.0.0.1:{second}", env=env, timeout=90)
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tcp", "True"], done.stderr
    [(port, _)] = BULK_LINE.findall(daemon.log())
    assert int(port) == first + 1


def test_a_bulk_port_taken_on_one_listeners_address_is_not_offered_at_all(site: Site, tmp_path: Path) -> None:
    """Bound on 127.0.0.1 but taken on 127.0.0.2: no bulk port, and no session is offered one."""
    port, taken = listener_with_next_port_taken("127.0.0.2")
    args = ["--simulate", "1x16GiB", "--tokens-file", str(site.tokens), "--listen", f"127.0.0.1:{port}"]
    with taken:
        daemon = Daemon(tmp_path, [*args, "--listen", f"127.0.0.2:{free_port()}"]).start()
    try:
        env = {**daemon.env, "BITSHARE_TOKEN": site.token}
        command = ("run", "--remote", "-p", "0.25", "--", sys.executable, "-c", ROUND_TRIP)
        done = run_cli(daemon, *command, server=f"127.0.0.1:{port}", env=env, timeout=90)
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stream", "True"]
    assert done.stderr == ""
    assert "daemon.no_bulk_port" in daemon.log()


def test_the_workers_door_closes_when_the_daemon_closes_its_end(tmp_path: Path) -> None:
    """The daemon dropped the session's route (the session ended): the worker stops waiting for
    connections instead of spinning on the closed handover socket."""
    from bitshare.daemon.workers.data_channel import DataChannel

    before = {t for t in threading.enumerate() if t.name == "data-channel"}
    daemon_end, worker_end = socket.socketpair()
    channel = DataChannel.handed_over(worker_end, 1, bytes(16), None)
    try:
        [admitting] = [t for t in threading.enumerate() if t.name == "data-channel" and t not in before]
        daemon_end.close()
        wait_for(lambda: not admitting.is_alive(), 10, "the admission thread to end")
    finally:
        channel.close()
