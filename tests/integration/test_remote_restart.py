"""A daemon killed with SIGKILL and restarted during a remote CuPy session: the session opens
again on the daemon that comes back, with a new worker. Arrays made before are lost with the old
worker's GPU memory: the sync under way and any later use of them raise ``ArrayLost`` (one line
if uncaught); new arrays work; ``bitshare run`` releases the lease once the daemon is back."""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psutil

from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, finish, free_port, make_token, spawn_cli, wait_for

TTL = 10.0  # long enough for a restart on a loaded machine, short enough to tell a release from an expiry

LOOP = """
import pathlib, sys
import cupy as cp
x = cp.ones(1024)
steps = 0
while True:
    x = x * 1.0
    assert float(x[0]) == 1.0  # a sync per step
    steps += 1
    if steps == 20:
        pathlib.Path(sys.argv[1]).touch()
"""

RECOVERING = """
import pathlib, sys
import numpy as np
import cupy as cp
x = cp.ones(1024)
big = cp.asarray(np.ones(300_000))  # 2.4 MB, on the data socket
steps = 0
try:
    while True:
        x = x * 1.0
        assert float(x[0]) == 1.0
        steps += 1
        if steps == 20:
            pathlib.Path(sys.argv[1]).touch()
except cp.ArrayLost as exc:
    print("interrupted:", exc)
for use in (lambda: (x + 1).get(), lambda: float(big.sum()), lambda: x.shape, lambda: cp.unique(x).shape):
    try:
        print("used:", use())
    except cp.ArrayLost as exc:
        print("lost:", exc)
fresh = cp.asarray(np.arange(300_000.0))
print("fresh:", float(fresh.sum()), float((cp.arange(5) * 2).sum()))
sys.exit(7)
"""

LOST = re.compile(
    r"remote array lost: bitshared restarted at \d\d:\d\d:\d\d and the arrays its worker held on the GPU "
    r"\(lease (?P<lease>\w+)\) went with it"
)


def run_through_a_restart(daemon: Daemon, tmp_path: Path, program: str) -> tuple[int, str, str, pb.Lease]:
    err = tmp_path / "run.err"
    running = tmp_path / "running"
    proc = spawn_cli(
        daemon, "run", "--remote", "-p", "0.25", "--", sys.executable, "-c", program, str(running), stderr_path=err
    )
    try:
        wait_for(running.exists, 60, "the program to run its loop")
    except AssertionError:
        proc.kill()
        raise AssertionError(err.read_text()) from None
    with daemon.client() as client:
        [lease] = client.all_leases()
    daemon.kill9()
    daemon.restart()
    code, out = finish(proc, 60, err)
    with daemon.client() as client:
        ended = client.get(lease.id)
    return code, out, err.read_text(), ended


def test_an_uncaught_loss_ends_the_program_in_one_line_and_the_lease_is_released(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", str(TTL))
    code, _, said, lease = run_through_a_restart(daemon, tmp_path, LOOP)
    assert code == 1, said
    assert "Traceback" not in said, said
    [line] = [line for line in said.splitlines() if "lost" in line]
    found = LOST.fullmatch(line.removeprefix("bitshare: "))
    assert line.startswith("bitshare: ") and found and found["lease"] == lease.id, said
    assert "could not release" not in said, said
    assert lease.state == pb.LEASE_STATE_RELEASED, pb.LeaseState.Name(lease.state)


def test_a_program_goes_on_after_a_restart_with_new_arrays(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", str(TTL))
    code, out, said, lease = run_through_a_restart(daemon, tmp_path, RECOVERING)
    assert code == 7, said  # the program's own exit code
    lines = out.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["interrupted", "lost", "lost", "used", "lost", "fresh"], out
    assert all(LOST.fullmatch(line.split(": ", 1)[1]) for line in lines if line.startswith(("interrupted", "lost")))
    assert lines[3] == "used: (1024,)"  # what the client knows of a lost array stays known
    assert lines[5] == f"fresh: {np_sum(300_000)} 20.0"
    assert "could not release" not in said, said
    assert lease.state == pb.LEASE_STATE_RELEASED, pb.LeaseState.Name(lease.state)
    assert "remote.started" in daemon.log()  # a new worker, on the daemon that came back


def np_sum(n: int) -> float:
    return float(n * (n - 1) // 2)


ENDS_WHILE_AWAY = """
import os, pathlib, sys, time
import cupy as cp
print(float(cp.arange(4).sum()), flush=True)
pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
go = pathlib.Path(sys.argv[2])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
"""


def test_a_program_that_ends_while_the_daemon_is_away_has_its_lease_released_on_its_return(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", str(TTL))
    err, started, go = tmp_path / "run.err", tmp_path / "pid", tmp_path / "go"
    proc = spawn_cli(
        daemon,
        "run",
        "--remote",
        "-p",
        "0.25",
        "--",
        sys.executable,
        "-c",
        ENDS_WHILE_AWAY,
        str(started),
        str(go),
        stderr_path=err,
    )
    wait_for(lambda: started.exists() and started.read_text(), 60, "the program to start")
    pid = int(started.read_text())
    with daemon.client() as client:
        [lease] = client.all_leases()
    daemon.kill9()
    go.touch()
    wait_for(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
        30,
        "the program to end",
    )
    assert proc.poll() is None  # bitshare run is still trying to release
    daemon.restart()
    code, out = finish(proc, 60, err)
    assert code == 0, err.read_text()
    assert out.strip() == "6.0"
    assert "could not release" not in err.read_text()
    with daemon.client() as client:
        assert client.get(lease.id).state == pb.LEASE_STATE_RELEASED


def test_a_daemon_that_does_not_come_back_ends_the_program_in_one_line(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    ttl = 3.0
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", str(ttl))
    err, running = tmp_path / "run.err", tmp_path / "running"
    proc = spawn_cli(
        daemon, "run", "--remote", "-p", "0.25", "--", sys.executable, "-c", LOOP, str(running), stderr_path=err
    )
    wait_for(running.exists, 60, "the program to run its loop")
    with daemon.client() as client:
        [lease] = client.all_leases()
    daemon.kill9()  # and not started again: the session cannot be reopened within the TTL
    finish(proc, 60, err)
    said = err.read_text()
    assert "Traceback" not in said and "AttributeError" not in said, said
    # (bitshare run's own lines, which may come first at the TTL, are not the program's)
    holder = ("could not release", "no contact with bitshared")
    program_said = [line for line in said.splitlines() if not any(h in line for h in holder)]
    assert program_said == [
        f"bitshare: the remote session of lease {lease.id} ended: bitshared went away and did not come "
        f"back within the lease's TTL ({ttl:g}s)"
    ], said


class CuttableProxy:
    """A TCP relay to the daemon whose open connections can be cut at once, as a network that
    fails for a moment would; it goes on taking new ones."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
                far = socket.create_connection(self.upstream)
            except OSError:
                return
            with self.lock:
                self.connections += [near, far]
            for source, target in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            cut, self.connections = self.connections, []
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        self.cut()


def test_a_broken_connection_reopens_the_session_on_the_same_daemon(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.toml"
    token = make_token(tokens, "ci", "client")
    port = free_port()
    daemon = make_daemon(
        "--simulate", "1x16GiB", "--lease-ttl", str(TTL), "--listen", f"127.0.0.1:{port}", "--tokens-file", str(tokens)
    )
    proxy = CuttableProxy(("127.0.0.1", port))
    err, running = tmp_path / "run.err", tmp_path / "running"
    try:
        proc = spawn_cli(
            daemon,
            *("run", "--remote", "-p", "0.25", "--", sys.executable, "-c", RECOVERING, str(running)),
            server=f"127.0.0.1:{proxy.port}",
            env={**daemon.env, "BITSHARE_TOKEN": token},
            stderr_path=err,
        )
        wait_for(running.exists, 60, "the program to run its loop")
        proxy.cut()
        code, out = finish(proc, 60, err)
    finally:
        proxy.close()
    assert code == 7, err.read_text()
    lines = out.splitlines()
    assert lines[0].startswith("interrupted: remote array lost: the session's connection to bitshared broke at "), out
    assert lines[-1] == f"fresh: {np_sum(300_000)} 20.0", out
    with daemon.client() as client:
        [lease] = client.all_leases(include_ended=True)
    assert lease.state == pb.LEASE_STATE_RELEASED, pb.LeaseState.Name(lease.state)
    assert daemon.log().count("remote.started") == 2  # a second worker, on the same daemon
