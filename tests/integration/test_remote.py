"""Remote GPU access on simulated GPUs: unmodified CuPy programs through ``bitshare run``, the
interposer against NumPy, bad input on the wire, a crashing worker, and the worker's telemetry."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from bitshare.client.connection import LeaseRequest
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import ROOT, Daemon, bitshare_cmd, finish, free_port, run_cli, spawn_cli, wait_for
from ..support.remote_wire import RawSession, results

Op = pb.ROp
MIB = 1024 * 1024


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon("--simulate", "1x16GiB", "--sample-interval", "0.1", "--grace", "2")


def run_python(
    daemon: Daemon, *args: str, partition: str = "0.25", memory_mib: int = 0, timeout: float = 90
) -> tuple[int, str, str]:
    size = ["-m", str(memory_mib)] if memory_mib else ["-p", partition]
    done = run_cli(daemon, "run", *size, "--", sys.executable, *args, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def test_random_draws_take_cupys_dtype_on_a_simulated_gpu(daemon: Daemon) -> None:
    program = (
        "import cupy as cp; a = cp.random.standard_normal((3, 4), dtype=cp.float32); "
        "b = cp.random.uniform(0, 1, 5, dtype=cp.float32); c = cp.random.random(2); "
        "print(a.dtype, a.shape, b.dtype, bool((b < 1).all()), c.dtype)"
    )
    code, out, err = run_python(daemon, "-c", program)
    assert code == 0, err
    assert out.strip() == "float32 (3, 4) float32 True float64"


@pytest.mark.parametrize(
    "example", [["cupy_mlp.py"], ["cupy_kmeans.py"], ["cupy_fft_filter.py", "--no-kernel"]], ids=lambda e: e[0]
)
def test_the_examples_run_unchanged_and_match_numpy(daemon: Daemon, example: list[str]) -> None:
    code, out, err = run_python(daemon, str(ROOT / "examples" / example[0]), *example[1:])
    assert code == 0, err
    assert "result matches NumPy within tolerance" in out


def test_the_covered_surface_agrees_with_numpy(daemon: Daemon) -> None:
    code, out, err = run_python(daemon, "-W", "ignore", str(ROOT / "tests" / "apps" / "conformance.py"), timeout=90)
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["failures"] == 0, out + err
    assert summary["cases"] > 100
    # the worker's functions found by name (NumPy's and SciPy's here), each called with small arrays
    assert summary["by_name"] > (450 if importlib.util.find_spec("scipy") else 250)


def test_a_kernel_on_a_simulated_gpu_says_it_needs_a_gpu(daemon: Daemon) -> None:
    code, _, err = run_python(daemon, str(ROOT / "examples" / "cupy_fft_filter.py"))
    assert code == 1
    assert "KernelUnavailable: RawKernel needs a GPU: this lease is on a simulated GPU" in err


def test_out_of_memory_at_the_partition_and_unsupported_names(daemon: Daemon) -> None:
    program = (
        "import cupy\n"
        "x = cupy.ones((1024, 1024), dtype=cupy.float32)\n"  # 4 MiB: fits
        "try:\n"
        "    cupy.zeros((64, 1024, 1024), dtype=cupy.float64).sum().get()\n"  # 512 MiB of a 256 MiB partition
        "except cupy.cuda.memory.OutOfMemoryError as exc:\n"
        "    print('refused:', exc)\n"
        "print(float(x.sum()))\n"
        "try:\n"
        "    cupy.loadtxt\n"  # NumPy's, but it reads the server's files: never forwarded
        "except NotImplementedError as exc:\n"
        "    print(exc)\n"
        "print(hasattr(cupy, 'no_such'), hasattr(x, 'no_such_method'), getattr(cupy.linalg, 'no_such', None))\n"
        "print(hasattr(cupy, 'polyfit'), cupy.polyfit(x[0, :4], 2 * x[0, :4] + 1, 0).tolist())\n"
    )
    code, out, err = run_python(daemon, "-c", program, partition="0.016")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("refused: out of memory allocating 536,870,912 bytes on simulated GPU 0")
    assert lines[1] == "1048576.0"
    assert lines[2].startswith("cupy.loadtxt is not supported by bitshare's remote CuPy")
    assert lines[3] == "False False None"  # an uncovered name is missing to hasattr and getattr too
    assert lines[4] == "True [3.0]"  # the worker's library, forwarded by name


# ----- the wire, spoken directly ------------------------------------------------------------


def upload(handle: int, array: np.ndarray) -> list[pb.RemoteRequest]:
    meta = pb.RMeta(shape=array.shape, dtype=array.dtype.str)
    return [
        pb.RemoteRequest(batch=pb.RBatch(ops=[Op(kind=Op.KIND_UPLOAD, out=[handle], meta=meta)])),
        pb.RemoteRequest(chunk=pb.RChunk(handle=handle, offset=0, data=array.tobytes())),
    ]


def test_bad_input_gets_clear_errors_and_the_worker_goes_on(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(memory_mib=64))
        raw = RawSession(client, lease.id)
        bad = [
            # an object dtype: never accepted
            (Op(kind=Op.KIND_UPLOAD, out=[1], meta=pb.RMeta(shape=[4], dtype="|O")), "ValueError", "not supported"),
            # more than the partition: refused before anything is allocated
            (
                Op(kind=Op.KIND_UPLOAD, out=[2], meta=pb.RMeta(shape=[128, MIB], dtype="|u1")),
                "OutOfMemoryError",
                "out of memory",
            ),
            # a handle nobody made
            (
                Op(kind=Op.KIND_CALL, name="negative", args=[pb.RValue(handle=999)], out=[3]),
                "ValueError",
                "unknown array handle 999",
            ),
            # functions outside the surface: one the library lacks, one it has but never forwards, a
            # private one, and one of a module that is not forwarded
            (Op(kind=Op.KIND_CALL, name="no_such", out=[4]), "NotImplementedError", "cupy.no_such is not supported"),
            (Op(kind=Op.KIND_CALL, name="loadtxt", out=[4]), "NotImplementedError", "cupy.loadtxt is not supported"),
            (Op(kind=Op.KIND_CALL, name="_core", out=[4]), "NotImplementedError", "is not supported"),
            (Op(kind=Op.KIND_CALL, name="lib.npyio.load", out=[4]), "NotImplementedError", "is not supported"),
            # a form of results the worker does not know
            (
                Op(kind=Op.KIND_CALL, name="ndim", args=[pb.RValue(int=3)], out=[4], results="pickle"),
                "ValueError",
                "unknown result form 'pickle'",
            ),
            # results in another form than the client was told before
            (
                Op(kind=Op.KIND_CALL, name="ndim", args=[pb.RValue(int=3)], out=[4], results="array"),
                "TypeError",
                "ndim gave a value where an array was expected",
            ),
            # a kernel, on a simulated GPU
            (
                Op(
                    kind=Op.KIND_KERNEL,
                    name="k",
                    kwargs={"kind": pb.RValue(str="RawKernel"), "code": pb.RValue(str="x")},
                ),
                "KernelUnavailable",
                "needs a GPU",
            ),
            # inline bytes that do not make the shape they claim
            (
                Op(
                    kind=Op.KIND_CALL,
                    name="asarray",
                    args=[pb.RValue(array=pb.RHostArray(dtype="<f4", shape=[3], data=b"\0" * 8))],
                    out=[5],
                ),
                "ValueError",
                "8 bytes do not make an array of shape (3,)",
            ),
        ]
        for op, kind, message in bad:
            [result] = results(raw.sync(op))
            assert result.error.type == kind, result.error
            assert message in result.error.message, result.error.message
        # A chunk that does not continue an upload is reported at the next sync.
        raw.send(*upload(6, np.arange(4, dtype=np.float32))[:1])
        raw.send(pb.RemoteRequest(chunk=pb.RChunk(handle=6, offset=8, data=b"\0" * 8)))
        [result] = results(raw.sync())
        assert result.error.type == "ValueError" and "does not continue the upload" in result.error.message
        # The same worker still serves good work.
        raw.send(*upload(7, np.arange(4, dtype=np.float32)))
        replies = raw.sync(Op(kind=Op.KIND_DOWNLOAD, args=[pb.RValue(handle=7)]))
        data = b"".join(r.chunk.data for r in replies if r.WhichOneof("kind") == "chunk")
        assert np.frombuffer(data, np.float32).tolist() == [0.0, 1.0, 2.0, 3.0]
        assert not replies[-1].result.HasField("error")
        raw.close()


def test_garbage_on_the_wire_is_refused(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(memory_mib=64))
        session = client.channel.stream_stream("/bitshare.v1.RemoteService/Session")
        opening = pb.RemoteRequest(open=pb.RemoteOpen(lease_id=lease.id)).SerializeToString()
        replies = list(session(iter([opening, b"\xff\xff\xff not protobuf"]), metadata=client.metadata, timeout=30))
        parsed = [pb.RemoteReply.FromString(r) for r in replies]
        assert parsed[0].WhichOneof("kind") == "session"
        [result] = [r.result for r in parsed if r.WhichOneof("kind") == "result"]
        assert result.error.type == "ProtocolError" and "not a RemoteRequest" in result.error.message
        refused = session(iter([b"\x01"]), metadata=client.metadata, timeout=30)
        with pytest.raises(grpc.RpcError) as err:
            list(refused)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_session_needs_an_active_lease_of_ones_own_and_only_one_at_a_time(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(memory_mib=64))
        first = RawSession(client, lease.id)
        first.sync(Op(kind=Op.KIND_QUERY, name="memory"))  # the first session is open (its worker answered)
        with pytest.raises(grpc.RpcError) as err:
            RawSession(client, lease.id).sync()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already has a remote session" in err.value.details()
        first.call.cancel()
        client.release(lease.id)
        with pytest.raises(grpc.RpcError) as err:
            RawSession(client, lease.id).sync()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# ----- the worker ------------------------------------------------------------------------------

HOLDER = """
import pathlib, sys, time
import cupy
x = cupy.ones((16, 1024, 1024), dtype=cupy.float32)  # 64 MiB on the worker
print(float(x[0, 0, 0]), flush=True)
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.05)
print(float(x.sum()))
"""


def test_the_workers_memory_counts_for_its_lease(daemon: Daemon, tmp_path: Path) -> None:
    err = tmp_path / "holder.err"
    proc = spawn_cli(
        daemon, "run", "-p", "0.25", "--", sys.executable, "-c", HOLDER, str(tmp_path / "go"), stderr_path=err
    )

    def measured() -> pb.Lease | None:
        with daemon.client() as client:
            leases = client.all_leases()
        # 64 MiB, and the few bytes of the scalar it read (counted in whole MiB)
        return leases[0] if leases and 64 <= leases[0].usage.used_mib <= 65 else None

    try:
        lease = wait_for(measured, 30, "the daemon to measure the worker's 64 MiB")
    except AssertionError:
        with daemon.client() as client:
            seen = client.all_leases()
        proc.kill()
        raise AssertionError(f"leases: {seen}\nholder: {err.read_text()}\ndaemon: {daemon.log()[-3000:]}") from None
    assert lease.enforcement == "watchdog" and len(lease.usage.processes) == 1
    (tmp_path / "go").touch()
    code, out = finish(proc, 60)
    assert code == 0 and out.splitlines() == ["1.0", "16777216.0"]


def test_a_crashing_worker_ends_its_lease_and_nothing_else(daemon: Daemon, tmp_path: Path) -> None:
    err = tmp_path / "crash.err"
    proc = spawn_cli(
        daemon, "run", "-p", "0.25", "--", sys.executable, "-c", HOLDER, str(tmp_path / "go"), stderr_path=err
    )

    def worker() -> tuple[str, int] | None:
        with daemon.client() as client:
            leases = client.all_leases()
        if leases and leases[0].usage.processes:
            return leases[0].id, leases[0].usage.processes[0].pid
        return None

    try:
        lease_id, pid = wait_for(worker, 30, "the worker to hold memory")
    except AssertionError:
        proc.kill()
        raise
    os.kill(pid, signal.SIGSEGV)  # as a bad kernel or an illegal address would end it
    (tmp_path / "go").touch()
    code, _ = finish(proc, 60, err)
    # The program either ends at its next sync (LeaseLost) or is ended with its lease (SIGTERM).
    assert code in (1, 128 + signal.SIGTERM)
    assert "crashed (killed by SIGSEGV)" in err.read_text()
    with daemon.client() as client:
        ended = client.get(lease_id)
        assert ended.state == pb.LEASE_STATE_REVOKED
        assert ended.end_reason == "its remote worker crashed (killed by SIGSEGV)"
    # The daemon, and other leases' workers, go on.
    code, out, stderr = run_python(daemon, "-c", "import cupy; print(float(cupy.arange(4).sum()))")
    assert code == 0 and out.strip() == "6.0", stderr


def test_the_data_socket_takes_only_the_sessions_secret(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(memory_mib=64))
        raw = RawSession(client, lease.id)
        [opened] = [r for r in raw.sync() if r.WhichOneof("kind") == "session"]
        assert opened.session.data_socket and len(opened.session.secret) == 32
        stranger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stranger.connect(opened.session.data_socket)
        stranger.sendall(b"\0" * 32)  # a wrong secret: dropped, and the socket still waits for the client
        owner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        owner.connect(opened.session.data_socket)
        owner.sendall(opened.session.secret)
        meta = pb.RMeta(shape=[4], dtype="<f4")
        raw.send(pb.RemoteRequest(batch=pb.RBatch(ops=[Op(kind=Op.KIND_UPLOAD, out=[1], meta=meta, direct=True)])))
        owner.sendall(np.arange(4, dtype=np.float32).tobytes())
        [result] = results(raw.sync(Op(kind=Op.KIND_QUERY, name="item", args=[pb.RValue(handle=1)])))
        assert result.error.type == "ValueError" and "size 1" in result.error.message  # the upload itself worked
        assert stranger.recv(1) == b""  # the stranger was hung up on
        for sock in (stranger, owner):
            sock.close()
        raw.close()


def test_over_tcp_the_data_travels_on_the_stream(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    made = run_cli_plain("token", "create", "--name", "ci", "--role", "client", "--file", str(tokens))
    port = free_port()
    daemon = make_daemon("--simulate", "1x16GiB", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(tokens))
    program = "import cupy, numpy; x = cupy.asarray(numpy.arange(600_000.0)); print(float(x.sum()), x.get()[-1])"
    done = run_cli(
        daemon,
        "run",
        "-p",
        "0.25",
        "--",
        sys.executable,
        "-c",
        program,
        server=f"127.0.0.1:{port}",
        env={**daemon.env, "BITSHARE_TOKEN": made},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["179999700000.0", "599999.0"]  # 4.8 MB: uploaded in chunks on the stream


def run_cli_plain(*args: str) -> str:
    return subprocess.run(bitshare_cmd(*args), capture_output=True, text=True, check=True, timeout=60).stdout.strip()


RESIZED = """
import pathlib, sys, time
import cupy
print(cupy.cuda.runtime.memGetInfo()[1] // 2**20, flush=True)
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.05)
print(cupy.cuda.runtime.memGetInfo()[1] // 2**20)
try:
    cupy.zeros((300, 1024, 1024), dtype=cupy.uint8).sum().get()  # 300 MiB: fitted 512, not 256
except cupy.cuda.memory.OutOfMemoryError:
    print("refused")
"""


def test_a_resize_reaches_the_worker_at_once(daemon: Daemon, tmp_path: Path) -> None:
    proc = spawn_cli(daemon, "run", "-m", "512", "--", sys.executable, "-c", RESIZED, str(tmp_path / "go"))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "512"
    with daemon.client() as client:
        [lease] = client.all_leases()
        client.resize(lease.id, memory_mib=256)
    (tmp_path / "go").touch()
    code, out = finish(proc, 60)
    assert code == 0 and out.split() == ["256", "refused"]


# ----- freeing and refusing ------------------------------------------------------------------------

REPLACING_LOOP = """
import cupy as cp
x = cp.ones(262144, dtype=cp.float64)  # 2 MiB
for _ in range(3000):  # no sync inside: one batch of 3,000 multiplications
    x = x * 1.0001
print(float(x[0]))
for _ in range(200):  # temporaries dropped inside one expression
    x = (x * 2.0 + 1.0) / 2.0 - 0.5
print(float(x[0]))
base = cp.arange(262144, dtype=cp.float64)
view = base[::2]
del base  # the view keeps its base's buffer on the worker
for _ in range(100):
    junk = cp.ones(262144) * 3.0
print(float(view[3]), view.shape)
print(cp.get_default_memory_pool().used_bytes() // 2**20)
kept = [cp.ones(262144) for _ in range(10)]  # dropped at interpreter exit
"""


def test_dropped_arrays_are_freed_in_the_batch_that_follows(daemon: Daemon) -> None:
    code, out, err = run_python(daemon, "-c", REPLACING_LOOP, memory_mib=160)
    assert code == 0, err
    first, second, view, used = out.splitlines()
    assert float(first) == pytest.approx(1.0001**3000)
    assert float(second) == pytest.approx(1.0001**3000)
    assert view == "6.0 (131072,)"
    assert int(used) <= 8, f"{used} MiB held on the worker with about 6 MiB live"
    assert "Exception ignored" not in err and "Traceback" not in err, err


UNSUPPORTED_DTYPES = """
import numpy as np
import cupy as cp

def attempt(what, make):
    try:
        value = make()
        print(what, "made", value.dtype)
    except Exception as exc:
        print(what, type(exc).__name__, exc)
    print(what, "then", float(cp.arange(4).sum()))

x = cp.ones(3)
attempt("zeros", lambda: cp.zeros(3, dtype="U5"))
attempt("ones", lambda: cp.ones(3, dtype=object))
attempt("empty", lambda: cp.empty(3, dtype="S4"))
attempt("full", lambda: cp.full(3, 1, dtype="M8[s]"))
attempt("void", lambda: cp.zeros(3, dtype="V8"))
attempt("structured", lambda: cp.zeros(3, dtype=[("a", "f4")]))
attempt("longdouble", lambda: cp.zeros(3, dtype=np.longdouble))
attempt("array", lambda: cp.array(["a", "bc"]))
attempt("asarray", lambda: cp.asarray(np.array([1, None], dtype=object)))
attempt("astype", lambda: x.astype("U5"))
attempt("like", lambda: cp.zeros_like(x, dtype=object))
attempt("typed", lambda: cp.zeros(3, dtype=np.str_))
attempt("arange", lambda: cp.arange(3, dtype="U5"))
attempt("linspace", lambda: cp.linspace(0, 1, 3, dtype="U5"))
attempt("eye", lambda: cp.eye(2, dtype="S1"))
attempt("keyword", lambda: cp.cumsum(x, dtype=object))
attempt("big-endian input", lambda: cp.asarray(np.arange(3, dtype=">f8")) + 0)
attempt("view", lambda: x.view("U2").get())
attempt("worker error", lambda: cp.linalg.inv(cp.zeros((2, 2))).get())
attempt("index", lambda: x[5].get())
attempt("shape", lambda: (cp.ones(3) + cp.ones(4)).get())

def never_made():
    failing = cp.linalg.inv(cp.zeros((2, 2)))
    skipped = cp.unique(x)  # queued after the failure: not run, its shape never told
    try:
        failing.get()
    except Exception:
        pass
    return skipped.shape

attempt("skipped", never_made)
print("end", (x * 2).get().tolist())
"""


def test_unsupported_dtypes_are_refused_as_cupy_refuses_them_and_the_session_goes_on(daemon: Daemon) -> None:
    code, out, err = run_python(daemon, "-c", UNSUPPORTED_DTYPES)
    assert code == 0, err
    lines = out.splitlines()
    then = [line for line in lines if " then " in line]
    assert then and all(line.endswith(" then 6.0") for line in then), out
    said = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines if " then " not in line}
    assert said["zeros"] == "ValueError Unsupported dtype <U5"
    assert said["ones"] == "ValueError Unsupported dtype object"
    assert said["empty"] == "ValueError Unsupported dtype |S4"
    assert said["full"] == "ValueError Unsupported dtype datetime64[s]"
    assert said["void"] == "ValueError Unsupported dtype |V8"
    assert said["structured"] == "ValueError Unsupported dtype [('a', '<f4')]"
    assert said["longdouble"] == "ValueError Unsupported dtype float128"
    assert said["array"] == "ValueError Unsupported dtype <U2"
    assert said["asarray"] == "ValueError Unsupported dtype object"
    assert said["astype"] == "ValueError Unsupported dtype <U5"
    assert said["like"] == "ValueError Unsupported dtype object"
    assert said["typed"] == "ValueError Unsupported dtype <U0"
    assert said["arange"] == "ValueError Unsupported dtype <U5"
    assert said["linspace"] == "ValueError Unsupported dtype <U5"
    assert said["eye"] == "ValueError Unsupported dtype |S1"
    assert said["keyword"] == "ValueError Unsupported dtype object"
    assert said["big-endian"] == "input made float64"
    assert said["view"].startswith("ValueError Unsupported dtype <U2")
    assert said["worker"].startswith("error LinAlgError")
    assert said["index"].startswith("IndexError index 5 is out of bounds")
    assert said["shape"].startswith("ValueError")
    assert said["skipped"].startswith("ValueError this array was not made: an operation queued before it failed")
    assert said["end"] == "[2.0, 2.0, 2.0]"


def test_a_transfer_broken_off_part_way_leaves_the_session_usable(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle of a download (here raised where the client reads the data socket,
    then where it reads the stream) leaves the next operations of the session working."""
    from bitshare.remote import bulk, cupy
    from bitshare.remote import session as remote

    with daemon.client() as client:
        lease = client.request(LeaseRequest(memory_mib=512))
    monkeypatch.setenv("BITSHARE_SERVER", daemon.server)
    monkeypatch.setenv("BITSHARE_LEASE_ID", lease.id)
    monkeypatch.setattr(remote, "_current", [])
    expected = np.arange(2_000_000.0)  # 16 MB: more than a socket buffer holds
    try:
        x = cupy.asarray(expected)
        opened = remote.session()
        assert opened._data is not None  # on the daemon's host: bulk bytes on the data socket

        read_into = bulk.read_into

        def interrupted(sock: socket.socket, view: memoryview) -> bool:
            monkeypatch.setattr(bulk, "read_into", read_into)  # once only
            raise KeyboardInterrupt

        monkeypatch.setattr(bulk, "read_into", interrupted)
        with pytest.raises(KeyboardInterrupt):
            x.get()
        np.testing.assert_array_equal(x.get(), expected)  # now in chunks on the stream
        assert opened._data is None

        replies = opened._replies

        def broken_at_the_first_chunk() -> Iterator[pb.RemoteReply]:
            for reply in replies:
                if reply.WhichOneof("kind") == "chunk":
                    raise KeyboardInterrupt
                yield reply

        opened._replies = broken_at_the_first_chunk()
        with pytest.raises(KeyboardInterrupt):
            x.get()
        opened._replies = replies
        np.testing.assert_array_equal((x * 2).get(), expected * 2)  # the rest of the earlier download is skipped
        assert float(x.sum()) == expected.sum()
    finally:
        if remote._current:
            remote._current[0].close()
    with daemon.client() as client:
        client.release(lease.id)


class CachingPool:
    """A partition whose freed blocks stay cached and count against its limit until reclaimed, as
    in CuPy's memory pool (an allocation past the limit fails without freeing the cache first)."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.live = 0
        self.cached = 0
        self.reclaimed = 0

    @property
    def used_bytes(self) -> int:
        return self.live

    def check_room(self, nbytes: int) -> None:
        if self.live + nbytes > self.limit_bytes:
            raise MemoryError(f"{nbytes} bytes do not fit")

    def adopt(self, array: np.ndarray) -> np.ndarray:
        if self.live + self.cached + array.nbytes > self.limit_bytes:
            raise MemoryError(f"out of memory allocating {array.nbytes} bytes (cached ones count)")
        self.live += array.nbytes
        weakref.finalize(array, self._cache, array.nbytes)
        return array

    def _cache(self, nbytes: int) -> None:
        self.live -= nbytes
        self.cached += nbytes

    def reclaim(self) -> bool:
        freed, self.cached = self.cached, 0
        self.reclaimed += freed
        return freed > 0

    def busy(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def set_limit(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes


def test_cached_blocks_of_freed_arrays_do_not_count_against_the_partition() -> None:
    from bitshare.daemon.workers.executor import Executor

    pool = CachingPool(limit_bytes=5 * 8 * 1024)  # five arrays of 1,024 doubles
    executor = Executor(np, pool)
    first = Op(kind=Op.KIND_CALL, name="ones", args=[pb.RValue(int=1024)], out=[1])
    steps = [
        [
            Op(kind=Op.KIND_CALL, name="multiply", args=[pb.RValue(handle=h), pb.RValue(float=2.0)], out=[h + 1]),
            Op(kind=Op.KIND_FREE, args=[pb.RValue(handle=h)]),
        ]
        for h in range(1, 21)
    ]
    ops = [first, *(op for step in steps for op in step)]
    [reply] = executor.batch(pb.RBatch(ops=ops, sync=True, seq=1))
    assert not reply.result.HasField("error"), reply.result.error
    assert executor.arrays[21][0] == 2.0**20
    assert pool.reclaimed > 0 and pool.live == 8 * 1024
