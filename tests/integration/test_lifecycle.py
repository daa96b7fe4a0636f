"""Idle reclaim and signal forwarding, with real commands under bitshare run."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, run_cli, spawn_cli, wait_for

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


def _session(daemon: Daemon, *args: str) -> str:
    done = run_cli(daemon, "request-gpus", "-p", "0.25", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _states(daemon: Daemon, *lease_ids: str) -> list[int]:
    with daemon.client() as client:
        return [client.get(lease_id).state for lease_id in lease_ids]


def test_a_second_session_keeps_the_first_and_release_says_which_remain(daemon: Daemon) -> None:
    first = _session(daemon)
    second = run_cli(daemon, "request-gpus", "-p", "0.25")
    assert second.returncode == 0, second.stderr
    second_id = second.stdout.strip()
    assert f"also holding session lease {first}" in second.stderr
    assert _states(daemon, first, second_id) == [pb.LEASE_STATE_ACTIVE, pb.LEASE_STATE_ACTIVE]

    on = run_cli(daemon, "client", "--", "sh", "-c", "echo $BITSHARE_LEASE_ID")
    assert (on.returncode, on.stdout.strip()) == (0, second_id)  # the latest session
    done = run_cli(daemon, "release-gpus")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        f"bitshare: lease {second_id} released; still held: {first} (release-gpus --lease ID, or --all)"
    )
    assert _states(daemon, first, second_id) == [pb.LEASE_STATE_ACTIVE, pb.LEASE_STATE_RELEASED]

    on = run_cli(daemon, "client", "--", "sh", "-c", "echo $BITSHARE_LEASE_ID")
    assert on.stdout.strip() == first
    done = run_cli(daemon, "release-gpus")
    assert done.stderr.strip() == f"bitshare: lease {first} released"
    assert _states(daemon, first) == [pb.LEASE_STATE_RELEASED]
    none = run_cli(daemon, "release-gpus")
    assert none.returncode == 2 and "no session lease" in none.stderr


def test_release_gpus_all_and_by_id(daemon: Daemon) -> None:
    leases = [_session(daemon) for _ in range(3)]
    done = run_cli(daemon, "release-gpus", "--lease", leases[1])
    assert done.stderr.strip() == (
        f"bitshare: lease {leases[1]} released; still held: {leases[0]}, {leases[2]} "
        "(release-gpus --lease ID, or --all)"
    )
    done = run_cli(daemon, "release-gpus", "--all")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"bitshare: lease {leases[2]} released\nbitshare: lease {leases[0]} released"
    assert set(_states(daemon, *leases)) == {pb.LEASE_STATE_RELEASED}
    both = run_cli(daemon, "release-gpus", "--all", "--lease", leases[0])
    assert both.returncode == 2 and "not both" in both.stderr


def test_the_session_file_is_private_and_a_foreign_one_is_refused(daemon: Daemon) -> None:
    lease_id = _session(daemon)
    runtime = Path(daemon.env["XDG_RUNTIME_DIR"]) / "bitshare"
    session = runtime / "session.json"
    info = session.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (os.getuid(), 0o600)
    assert sorted(p.name for p in runtime.iterdir() if "session" in p.name) == ["session.json", "session.lock"]

    os.chown(session, 65534, -1)  # someone else's file where ours should be
    done = run_cli(daemon, "release-gpus")
    assert done.returncode == 77, done.stderr
    assert done.stderr.strip().startswith(f"bitshare: error: refusing {session}: ")
    assert _states(daemon, lease_id) == [pb.LEASE_STATE_ACTIVE]

    session.unlink()
    (runtime / "elsewhere.json").write_text(json.dumps({"leases": [{"lease_id": lease_id, "server": "x"}]}))
    session.symlink_to(runtime / "elsewhere.json")
    done = run_cli(daemon, "release-gpus")
    assert done.returncode == 77 and "refusing" in done.stderr, done.stderr
    assert _states(daemon, lease_id) == [pb.LEASE_STATE_ACTIVE]


def test_request_gpus_takes_no_lease_it_could_not_remember(daemon: Daemon) -> None:
    runtime = Path(daemon.env["XDG_RUNTIME_DIR"]) / "bitshare"
    runtime.mkdir(mode=0o700, exist_ok=True)
    (runtime / "session.json").write_text(json.dumps({"leases": []}))
    os.chown(runtime / "session.json", 65534, -1)
    done = run_cli(daemon, "request-gpus", "-p", "0.25")
    assert done.returncode == 77, done.stderr
    assert "refusing" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    with daemon.client() as client:
        assert client.all_leases(include_ended=True) == []  # asked for nothing
