"""Idle reclaim and signal forwarding, with real commands under bitshare run."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from bitshare.v1 import bitshare_pb2 as pb

from ..conftest import Daemon, spawn_cli, wait_for

BUSY = """
import pathlib, sys, time
pathlib.Path(sys.argv[1]).touch()
while not pathlib.Path(sys.argv[2]).exists():
    sum(i * i for i in range(20000))
"""


def _lease_of(daemon: Daemon, command_part: str) -> pb.Lease | None:
    with daemon.client() as client:
        for lease in client.all_leases(include_ended=True):
            if command_part in lease.command:
                return lease
    return None


def test_idle_lease_is_reclaimed_and_a_busy_one_is_not(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", "3", "--idle-timeout", "2")
    idle_err = tmp_path / "idle.err"
    idle = spawn_cli(daemon, "run", "-p", "0.25", "--kill-grace", "2", "--", "sleep", "60", stderr_path=idle_err)
    busy = spawn_cli(
        daemon, "run", "-p", "0.25", "--", sys.executable, "-c", BUSY, str(tmp_path / "started"), str(tmp_path / "stop")
    )
    wait_for((tmp_path / "started").exists, 30, "busy command running")
    assert idle.wait(timeout=30) == 128 + signal.SIGTERM
    reclaimed = _lease_of(daemon, "sleep 60")
    assert reclaimed.state == pb.LEASE_STATE_REVOKED and reclaimed.end_reason == "idle"
    assert "revoked: idle" in idle_err.read_text()
    busy_lease = _lease_of(daemon, "-c")
    assert busy_lease.state == pb.LEASE_STATE_ACTIVE
    granted = busy_lease.granted_at.ToNanoseconds() / 1e9
    wait_for(lambda: time.time() > granted + 3 * 2, 15, "three idle timeouts to pass")
    assert _lease_of(daemon, "-c").state == pb.LEASE_STATE_ACTIVE
    (tmp_path / "stop").touch()
    assert busy.wait(timeout=30) == 0


def test_signals_reach_the_command_and_the_lease_is_released(daemon: Daemon, tmp_path: Path) -> None:
    trap = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
        f"pathlib.Path({str(tmp_path / 'ready')!r}).touch()\n"
        "time.sleep(60)\n"
    )
    run = spawn_cli(daemon, "run", "-p", "0.25", "--", sys.executable, "-c", trap)
    wait_for((tmp_path / "ready").exists, 30, "command running")
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 42  # the command's own exit code, from its own handler
    lease = _lease_of(daemon, "-c")
    assert lease.state == pb.LEASE_STATE_RELEASED
