"""Durability: kill -9 of the daemon loses nothing; kill -9 of a holder loses its lease within the TTL."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from bitshare.client.connection import LeaseRequest
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, finish, hold_and_exit, run_cli, spawn_cli, wait_for
from ..support.holders import hold_command

TTL = 3.0


def _snapshot(daemon: Daemon) -> dict[str, tuple]:
    with daemon.client() as client:
        return {
            lease.id: (lease.state, tuple((a.gpu_index, a.memory_mib) for a in lease.allocations), lease.queue_position)
            for lease in client.all_leases()
        }


def test_kill9_and_restart_keeps_every_lease_and_queued_request(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", str(TTL))
    holders = [
        spawn_cli(daemon, "run", "-p", "0.5", "--", *hold_command(tmp_path / f"m{i}", tmp_path / f"stop{i}"))
        for i in range(2)
    ]
    wait_for(lambda: (tmp_path / "m0").exists() and (tmp_path / "m1").exists(), 30, "two holders running")
    waiter_err = tmp_path / "waiter.err"
    waiter = spawn_cli(
        daemon, "run", "-p", "0.5", "--", *hold_command(tmp_path / "m2", tmp_path / "stop2"), stderr_path=waiter_err
    )
    wait_for(lambda: "queued at position 1" in waiter_err.read_text(), 15, "third request queued")
    before = _snapshot(daemon)
    assert sorted(s[0] for s in before.values()) == [
        pb.LEASE_STATE_QUEUED,
        pb.LEASE_STATE_ACTIVE,
        pb.LEASE_STATE_ACTIVE,
    ]

    daemon.kill9()
    daemon.restart()
    assert "daemon.restored leases=3" in daemon.log()
    assert _snapshot(daemon) == before

    # Past two TTLs after the restart the holders have reconnected and still hold their leases,
    # and the queued request is still queued: nothing expired, nothing granted twice.
    with daemon.client() as client:
        started = client.server_info().started_at.ToNanoseconds() / 1e9
    import time

    wait_for(lambda: time.time() > started + 2 * TTL, 3 * TTL, "two TTLs to pass")
    assert _snapshot(daemon) == before
    assert not (tmp_path / "m2").exists()

    (tmp_path / "stop0").touch()
    assert holders[0].wait(timeout=30) == 0
    wait_for((tmp_path / "m2").exists, 15, "queued request to start after a release")
    for i in (1, 2):
        (tmp_path / f"stop{i}").touch()
    assert holders[1].wait(timeout=30) == 0 and waiter.wait(timeout=30) == 0


def test_holder_killed_with_sigkill_loses_its_lease_to_the_next_in_queue(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", str(TTL))
    holder = spawn_cli(daemon, "run", "-p", "1", "--", *hold_command(tmp_path / "m0", tmp_path / "stop0"))
    wait_for((tmp_path / "m0").exists, 30, "holder running")
    held = (tmp_path / "m0").read_text()
    waiter = spawn_cli(daemon, "run", "-p", "1", "--", *hold_command(tmp_path / "m1", tmp_path / "stop1"))
    wait_for(lambda: any(s[0] == pb.LEASE_STATE_QUEUED for s in _snapshot(daemon).values()), 15, "waiter queued")

    os.kill(holder.pid, signal.SIGKILL)  # the bitshare process, not its command: no release is sent
    holder.wait()
    import time

    killed_at = time.monotonic()
    wait_for((tmp_path / "m1").exists, 3 * TTL, "the waiter to get the GPU")
    assert time.monotonic() - killed_at < TTL + 2.0
    with daemon.client() as client:
        lost = client.get(held)
        assert lost.state == pb.LEASE_STATE_EXPIRED
        assert "no heartbeat" in lost.end_reason
    (tmp_path / "stop0").touch()
    (tmp_path / "stop1").touch()
    assert waiter.wait(timeout=30) == 0


def test_acknowledged_grants_are_on_disk_before_the_reply(make_daemon) -> None:
    daemon = make_daemon("--simulate", "1x16GiB")
    with daemon.client() as client:
        granted = [client.request(LeaseRequest(memory_mib=100)).id for _ in range(20)]
    daemon.kill9()
    with sqlite3.connect(daemon.state_dir / "state.db") as conn:
        on_disk = {row[0]: row[1] for row in conn.execute("SELECT id, state FROM leases")}
    assert {i: on_disk.get(i) for i in granted} == {i: "active" for i in granted}


def test_retried_request_id_gets_the_same_lease_across_a_restart(make_daemon) -> None:
    daemon = make_daemon("--simulate", "1x16GiB")
    request = LeaseRequest(fraction=0.5)
    with daemon.client() as client:
        first = client.request(request)
    daemon.kill9()
    daemon.restart()
    with daemon.client() as client:
        again = client.request(request)
        assert again.id == first.id
        assert len(client.all_leases()) == 1
        assert client.gpus()[0].granted_mib == first.allocations[0].memory_mib


def test_session_survives_restart_and_is_released(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", str(TTL))
    requested = run_cli(daemon, "request-gpus", "-p", "0.5", "--session-ttl", "600")
    assert requested.returncode == 0, requested.stderr
    lease_id = requested.stdout.strip()
    daemon.kill9()
    daemon.restart()
    import sys

    ran = run_cli(daemon, "client", "--", sys.executable, "-c", "import os; print(os.environ['BITSHARE_LEASE_ID'])")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == lease_id
    with daemon.client() as client:
        assert client.get(lease_id).state == pb.LEASE_STATE_ACTIVE  # the session still holds it
    released = run_cli(daemon, "release-gpus")
    assert released.returncode == 0, released.stderr
    with daemon.client() as client:
        assert client.get(lease_id).state == pb.LEASE_STATE_RELEASED
    again = run_cli(daemon, "release-gpus")
    assert again.returncode == 2 and "no session lease" in again.stderr


def test_a_queued_session_request_outlives_the_daemon_ttl(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", "1")
    with daemon.client() as client:
        holder = client.request(LeaseRequest(fraction=1.0, ttl_s=600))
    waiter_err = tmp_path / "waiter.err"
    waiter = spawn_cli(daemon, "request-gpus", "-p", "1", "--session-ttl", "600", stderr_path=waiter_err)
    wait_for(lambda: "queued at position 1" in waiter_err.read_text(), 15, "session request queued")
    with daemon.client() as client:
        queued = client.my_leases()[-1]
        import time

        wait_for(lambda: time.time() > queued.created_at.ToNanoseconds() / 1e9 + 3, 10, "three daemon TTLs")
        assert client.get(queued.id).state == pb.LEASE_STATE_QUEUED  # kept alive by the waiting client
        client.release(holder.id)
    code, out = finish(waiter, 30, waiter_err)
    assert code == 0 and out.strip() == queued.id


LONG_TTL = 3.0


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["kill9", "sigterm"])
def test_a_lease_held_for_several_ttls_survives_a_restart_and_is_kept_alive(
    make_daemon, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", str(LONG_TTL))
    marker, stop = tmp_path / "lease", tmp_path / "stop"
    holder_err = tmp_path / "holder.err"
    holder = spawn_cli(
        daemon, "run", "-p", "0.25", "--", sys.executable, "-c", hold_and_exit(7), str(marker), str(stop),
        stderr_path=holder_err,
    )  # fmt: skip
    lease_id = wait_for(lambda: marker.exists() and marker.read_text(), 30, "the command to start")
    with daemon.client() as client:
        granted = client.get(lease_id).granted_at.ToNanoseconds() / 1e9
        wait_for(lambda: time.time() > granted + 3 * LONG_TTL, 5 * LONG_TTL, "three TTLs to pass")

    daemon.proc.send_signal(stop_signal)
    daemon.proc.wait(timeout=15)
    daemon.restart()

    with daemon.client() as client:
        started = client.server_info().started_at.ToNanoseconds() / 1e9
        first_expiry = client.get(lease_id).expires_at.ToNanoseconds() / 1e9
        # Past a TTL after the restart a lease whose holder had not come back would have expired:
        # this one is still active, its holder back and keeping it alive.
        wait_for(lambda: time.time() > started + 1.5 * LONG_TTL, 4 * LONG_TTL, "a TTL and a half to pass")
        kept = client.get(lease_id)
        assert kept.state == pb.LEASE_STATE_ACTIVE, kept.end_reason
        assert kept.expires_at.ToNanoseconds() / 1e9 > first_expiry + LONG_TTL / 2  # heartbeats arrive
    assert holder.poll() is None, holder_err.read_text()
    stop.touch()
    code, _ = finish(holder, 30, holder_err)
    assert code == 7, holder_err.read_text()
    assert "ending the command" not in holder_err.read_text()
    with daemon.client() as client:
        assert client.get(lease_id).state == pb.LEASE_STATE_RELEASED


def test_a_holder_whose_daemon_stops_answering_ends_its_command_at_the_ttl(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", str(TTL))
    marker, stop = tmp_path / "lease", tmp_path / "stop"
    holder_err = tmp_path / "holder.err"
    holder = spawn_cli(
        daemon, "run", "-p", "0.25", "--", sys.executable, "-c", hold_and_exit(7), str(marker), str(stop),
        stderr_path=holder_err,
    )  # fmt: skip
    lease_id = wait_for(lambda: marker.exists() and marker.read_text(), 30, "the command to start")
    with daemon.client() as client:
        granted = client.get(lease_id).granted_at.ToNanoseconds() / 1e9
        wait_for(lambda: time.time() > granted + TTL, 3 * TTL, "a TTL to pass")
    # Frozen, the daemon keeps its socket open but answers nothing, as across a network that
    # drops every packet: the stream does not break, and the holder must notice the silence.
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        code, _ = finish(holder, 3 * TTL + 10, holder_err)
        assert time.monotonic() - frozen_at < 3 * TTL, holder_err.read_text()  # gRPC's keepalive: 30 s
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert code != 7 and f"no contact with bitshared for {TTL:g}s" in holder_err.read_text()
    with daemon.client() as client:  # the daemon, awake again, has expired the silent lease itself
        wait_for(lambda: client.get(lease_id).state == pb.LEASE_STATE_EXPIRED, 3 * TTL, "the lease to expire")
