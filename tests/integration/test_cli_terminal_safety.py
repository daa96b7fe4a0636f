"""Text that a client or a daemon chooses never drives the terminal of whoever runs ``bitshare``.

A lease's command and host are any client's to choose, and a daemon (or whatever answers at its
address) chooses every string it sends: drawn as they are, escape sequences among them would clear
the screen, write anywhere on it or set its title, and a bidi override would reorder what is read.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import unicodedata
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from bitshare.present.printable import MARK
from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.protocol.v1 import bitshare_pb2_grpc as pb_grpc

from ..support.harness import Daemon, Terminal, finish, run_cli, spawn_cli, wait_for

HOSTILE = "job \x1b[2J\x1b[HPWNED\x07 \u202eevil\x9b1m\r"


def _acting(text: str) -> list[str]:
    """The characters of ``text`` a terminal would act on (or that reorder it), line breaks aside."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf")]


def assert_shown_harmless(text: str) -> None:
    assert not _acting(text), f"control characters reach the terminal: {_acting(text)!r} in {text!r}"
    assert "PWNED" in text and MARK in text  # the text is still there, its controls shown as marks


@pytest.fixture
def hostile_leases(daemon: Daemon) -> Iterator[tuple[Daemon, pb.Lease, pb.Lease]]:
    """One active lease and one queued request whose command and client host carry escape sequences."""
    with daemon.client() as client:
        made = [
            client.call(
                client.leases.RequestLease,
                pb.RequestLeaseRequest(
                    request_id=f"hostile-{n}",
                    spec=pb.LeaseSpec(gpu_count=1, fraction=fraction, wait=True),
                    client_host=HOSTILE,
                    command=HOSTILE,
                ),
            )
            for n, fraction in enumerate((1.0, 0.5))
        ]
    assert [lease.state for lease in made] == [pb.LEASE_STATE_ACTIVE, pb.LEASE_STATE_QUEUED]
    assert made[0].command == HOSTILE  # the daemon keeps the command as it was sent
    yield daemon, made[0], made[1]


def test_listings_show_a_hostile_command_as_marks(hostile_leases) -> None:
    daemon, _, _ = hostile_leases
    for args in (("leases", "--all"), ("leases",), ("queue",), ("smi",)):
        done = run_cli(daemon, *args)
        assert done.returncode == 0, (args, done.stderr)
        if args != ("smi",):  # smi draws GPUs and lease ids, not commands
            assert_shown_harmless(done.stdout)
        assert not _acting(done.stdout + done.stderr), args


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_an_admins_terminal_is_not_cleared_by_a_listing(hostile_leases, tmp_path: Path) -> None:
    daemon, _, _ = hostile_leases
    listing = f"{shlex.quote(sys.executable)} -m bitshare --server {daemon.server} leases --all"
    with Terminal(daemon, tmp_path, f"echo written before; {listing}") as terminal:
        wait_for(lambda: terminal.exit_status() is not None, 30, "bitshare leases to exit")
        screen = terminal.screen()
    assert terminal.exit_status() == 0, screen
    assert screen.startswith("written before\n"), screen  # the screen was not cleared
    rows = [line for line in screen.splitlines() if "PWNED" in line]
    assert len(rows) == 2 and all(f"job {MARK}[2J{MARK}[HPWNED" in row for row in rows), screen


def test_events_show_a_hostile_reason_as_marks(hostile_leases) -> None:
    daemon, active, _ = hostile_leases
    with daemon.client() as client:
        client.revoke(active.id, reason=HOSTILE)
    done = run_cli(daemon, "events")
    assert done.returncode == 0, done.stderr
    assert_shown_harmless(done.stdout)
    assert len([line for line in done.stdout.splitlines() if "PWNED" in line]) == 1  # one row, not broken up


def test_a_holders_terminal_shows_a_hostile_revoke_reason_as_marks(daemon: Daemon, tmp_path: Path) -> None:
    """``bitshare run`` tells its user why the lease ended; the reason is the revoking admin's text."""
    stderr_path = tmp_path / "run.stderr"
    holder = spawn_cli(daemon, "run", "-p", "0.5", "--", "sleep", "60", stderr_path=stderr_path)
    with daemon.client() as client:
        lease = wait_for(lambda: next(iter(client.all_leases()), None), 30, "the holder's lease")
        wait_for(lambda: client.get(lease.id).state == pb.LEASE_STATE_ACTIVE, 30, "the lease to be granted")
        client.revoke(lease.id, reason=HOSTILE)
    code, _ = finish(holder, 60, stderr_path)
    assert code != 0
    said = stderr_path.read_text()
    assert "ending the command" in said, said
    assert_shown_harmless(said)


def test_json_escapes_what_a_terminal_would_act_on(hostile_leases) -> None:
    daemon, _, _ = hostile_leases
    done = run_cli(daemon, "leases", "--all", "--json")
    assert done.returncode == 0, done.stderr
    assert not _acting(done.stdout)  # bidi overrides too: written as \u202e
    assert {lease["command"] for lease in json.loads(done.stdout)} == {HOSTILE}  # and read back exactly


class HostileDaemon(pb_grpc.LeaseServiceServicer):
    """Something answering at a daemon's address with escape sequences in every string it sends."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse

    def GetServerInfo(self, request: pb.GetServerInfoRequest, context: grpc.ServicerContext) -> pb.ServerInfo:
        if self.refuse:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, HOSTILE)
        return pb.ServerInfo(version=HOSTILE, hostname=HOSTILE, backend="nvml", caller=HOSTILE, gpu_count=1)

    def ListGpus(self, request: pb.ListGpusRequest, context: grpc.ServicerContext) -> pb.ListGpusResponse:
        gpu = pb.Gpu(index=0, name=HOSTILE, uuid=HOSTILE, total_mib=1024, capacity_mib=1024, free_mib=1024)
        gpu.unleased.add(pid=7, name=HOSTILE, user=HOSTILE, used_mib=10)
        return pb.ListGpusResponse(gpus=[gpu])

    def ListLeases(self, request: pb.ListLeasesRequest, context: grpc.ServicerContext) -> pb.ListLeasesResponse:
        lease = pb.Lease(id=HOSTILE, owner=HOSTILE, command=HOSTILE, enforcement=HOSTILE)
        return pb.ListLeasesResponse(leases=[lease])


def _serve(servicer: HostileDaemon) -> tuple[grpc.Server, str]:
    """``servicer`` and a health service that says SERVING, on a loopback port; returns the address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_LeaseServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def test_what_a_daemon_sends_is_shown_as_marks(daemon: Daemon) -> None:
    server, address = _serve(HostileDaemon())
    try:
        for args in (("smi",), ("list-gpus",), ("leases",), ("health",), ("version",)):
            done = run_cli(daemon, *args, server=address)
            assert done.returncode == 0, (args, done.stderr)
            assert_shown_harmless(done.stdout)
            assert not _acting(done.stderr), args
    finally:
        server.stop(None)


def test_a_daemons_error_text_is_one_harmless_line(daemon: Daemon) -> None:
    server, address = _serve(HostileDaemon(refuse=True))
    try:
        done = run_cli(daemon, "list-gpus", server=address)
    finally:
        server.stop(None)
    assert done.returncode == 77, done.stderr
    assert done.stderr.startswith("bitshare: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert_shown_harmless(done.stderr)
