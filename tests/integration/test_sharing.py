"""Four 25% leases share one simulated GPU; a fifth waits its turn; --no-wait fails fast."""

from __future__ import annotations

from pathlib import Path

from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, run_cli, spawn_cli, wait_for
from ..support.holders import hold_command


def _active(daemon: Daemon) -> list[pb.Lease]:
    with daemon.client() as client:
        return [lease for lease in client.all_leases() if lease.state == pb.LEASE_STATE_ACTIVE]


def test_four_quarter_leases_run_together_and_a_fifth_waits(daemon: Daemon, tmp_path: Path) -> None:
    procs = []
    for i in range(4):
        procs.append(
            spawn_cli(daemon, "run", "-p", "0.25", "--", *hold_command(tmp_path / f"m{i}", tmp_path / f"stop{i}"))
        )
    # All four commands are running at the same time, each with its own lease.
    markers = wait_for(lambda: all((tmp_path / f"m{i}").exists() for i in range(4)), 30, "four commands running")
    assert markers
    lease_ids = {(tmp_path / f"m{i}").read_text() for i in range(4)}
    assert len(lease_ids) == 4
    active = _active(daemon)
    assert {lease.id for lease in active} == lease_ids
    assert sum(lease.allocations[0].memory_mib for lease in active) <= 16384 - 512

    fifth_err = tmp_path / "fifth.err"
    fifth = spawn_cli(
        daemon, "run", "-p", "0.25", "--", *hold_command(tmp_path / "m4", tmp_path / "stop4"), stderr_path=fifth_err
    )
    wait_for(lambda: "queued at position 1" in fifth_err.read_text(), 15, "fifth to show its queue position")
    assert not (tmp_path / "m4").exists()

    # --no-wait on the full GPU fails at once with exit 75.
    busy = run_cli(daemon, "run", "-p", "0.5", "--no-wait", "--", "true")
    assert busy.returncode == 75, busy.stderr
    assert "no GPU has 0.5 of a GPU free" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1

    # One of the four ends: the fifth starts.
    (tmp_path / "stop0").touch()
    assert procs[0].wait(timeout=30) == 0
    wait_for((tmp_path / "m4").exists, 15, "fifth command to start")
    assert len(_active(daemon)) == 4

    for i in range(1, 5):
        (tmp_path / f"stop{i}").touch()
    for proc in [*procs[1:], fifth]:
        assert proc.wait(timeout=30) == 0
    wait_for(lambda: not _active(daemon), 10, "every lease released")


def test_run_passes_lease_environment_and_exit_code(daemon: Daemon) -> None:
    script = (
        "import os,sys; print(os.environ['BITSHARE_LEASE_ID'], os.environ['BITSHARE_GPU_MEMORY_MIB'], "
        "os.environ['BITSHARE_SERVER'], os.environ.get('BITSHARE_SIMULATED')); sys.exit(7)"
    )
    import sys

    done = run_cli(daemon, "run", "-m", "1GiB", "--", sys.executable, "-c", script)
    assert done.returncode == 7, done.stderr
    lease_id, mib, server, simulated = done.stdout.split()
    assert mib == "1024" and server == daemon.server and simulated == "1"
    with daemon.client() as client:
        assert client.get(lease_id).state == pb.LEASE_STATE_RELEASED


def test_command_not_found_exits_127_and_releases(daemon: Daemon) -> None:
    done = run_cli(daemon, "run", "-p", "0.25", "--", "/nonexistent/program")
    assert done.returncode == 127
    assert "command not found" in done.stderr
    with daemon.client() as client:
        assert not [lease for lease in client.all_leases() if lease.state == pb.LEASE_STATE_ACTIVE]


def test_wait_timeout_exits_75(daemon: Daemon, tmp_path: Path) -> None:
    holder = spawn_cli(daemon, "run", "-p", "1", "--", *hold_command(tmp_path / "m", tmp_path / "stop"))
    wait_for((tmp_path / "m").exists, 15, "holder running")
    done = run_cli(daemon, "run", "-p", "0.5", "--timeout", "0.5", "--", "true")
    assert done.returncode == 75, done.stderr
    assert "timed out" in done.stderr
    with daemon.client() as client:
        assert [lease.state for lease in client.all_leases()] == [pb.LEASE_STATE_ACTIVE]
    (tmp_path / "stop").touch()
    assert holder.wait(timeout=30) == 0


def test_whole_gpus_stay_free_for_whole_gpu_requests(make_daemon) -> None:
    daemon = make_daemon("--simulate", "2x16GiB")
    with daemon.client() as client:
        from bitshare.client.connection import LeaseRequest

        small = [client.request(LeaseRequest(fraction=0.25)) for _ in range(3)]
        assert {lease.allocations[0].gpu_index for lease in small} == {0}  # packed onto one GPU
        whole = client.request(LeaseRequest(fraction=1.0, wait=False))
        assert whole.state == pb.LEASE_STATE_ACTIVE and whole.allocations[0].gpu_index == 1
