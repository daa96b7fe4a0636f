"""Leases made for Slurm jobs, against a real daemon: who may make them, their key, their processes.

The job's processes are found under its step daemons. Here a step daemon is played by a
root process that looks like one to the daemon (its command is named ``slurmstepd`` and its
title ``slurmstepd: [<job>.batch]``); tests/integration/test_slurm.py runs the real Slurm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bitshare.client.connection import LeaseRequest, connect
from bitshare.errors import BitshareError
from bitshare.holder.environment import lease_environment
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, daemon_with_token, wait_for
from ..support.reachable import reachable_by_others

APP = Path(__file__).resolve().parent.parent / "apps" / "simgpu_app.py"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="making a lease for another user needs root (an admin)")


def job_request(job: str, **extra: object) -> LeaseRequest:
    fields: dict = {"fraction": 0.25, "wait": False, "owner_user": "nobody", "slurm_job": job, "request_id": f"s-{job}"}
    fields.update(extra)
    return LeaseRequest(**fields)


@pytest.fixture
def fast(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon("--simulate", "1x16GiB", "--grace", "1", "--sample-interval", "0.1")


@pytest.fixture
def step_daemon() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start a stand-in step daemon of a job: it runs ``argv`` as its child and waits for it."""
    where = Path(tempfile.mkdtemp(prefix="bitshare-steps-"))
    os.chmod(where, 0o755)
    (where / "slurmstepd").symlink_to(sys.executable)
    started: list[subprocess.Popen] = []

    def start(job: str, argv: list[str], env: dict[str, str], user: str = "") -> subprocess.Popen:
        waiter = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
        command = ["bash", "-c", 'exec -a "$0" "$@"', f"slurmstepd: [{job}.batch]", str(where / "slurmstepd")]
        command += ["-c", waiter, *argv]
        if user:
            command = ["runuser", "-u", user, "--", *command]
        proc = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
    for child in where.iterdir():
        child.unlink()
    where.rmdir()


def test_an_admin_makes_a_lease_for_a_user_and_a_job_and_a_repeat_gets_it_again(fast: Daemon) -> None:
    with fast.client() as root:
        lease = root.request(job_request("42", command="slurm job 42 (train)"))
        again = root.request(job_request("42"))
        assert again.id == lease.id and lease.owner == "user:nobody" and lease.slurm_job == "42"
        assert [item.id for item in root.all_leases(slurm_job="42")] == [lease.id]
        assert root.all_leases(slurm_job="43") == []
        with pytest.raises(BitshareError, match="was used for lease"):  # the same key for another job
            root.request(job_request("43", request_id="s-42"))
        events = root.events(lease_id=lease.id)
        assert events[-1].detail.startswith("slurm job 42") and events[-1].actor == "user:root"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"slurm_job": "4x2"}, "Slurm job id '4x2' is not a number"),
        ({"owner_user": "no-such-user-here"}, "no local user 'no-such-user-here' on this host"),
    ],
)
def test_bad_job_fields_are_refused_and_change_nothing(fast: Daemon, fields: dict, message: str) -> None:
    with fast.client() as root:
        with pytest.raises(BitshareError, match=message) as caught:
            root.request(job_request("42", **fields))
        assert caught.value.exit_code == 2
        assert root.all_leases() == []


def test_a_client_may_not_make_a_lease_for_another_user_or_a_job(make_daemon, tmp_path: Path) -> None:
    daemon, address, token = daemon_with_token(make_daemon, tmp_path, "client")
    with connect(address, token) as client:
        for fields in ({"slurm_job": "42", "owner_user": ""}, {"slurm_job": "", "owner_user": "nobody"}):
            with pytest.raises(BitshareError, match="only an admin may") as caught:
                client.request(job_request("42", **fields))
            assert caught.value.exit_code == 77
    with daemon.client() as root:
        assert root.all_leases() == []


def simgpu_env(daemon: Daemon, lease: pb.Lease) -> dict[str, str]:
    with daemon.client() as client:
        directory = client.info.simgpu_directory
    env = dict(daemon.env)
    env.update(lease_environment(lease, daemon.server, local_gpus=True, simgpu_directory=directory))
    env["BITSHARE_GPU_MEMORY_MIB"] = "0"  # no limit of its own: a process that ignores its partition
    return env


def test_a_running_job_keeps_its_lease_past_its_ttl_and_a_gone_job_lets_it_expire(
    fast: Daemon, step_daemon: Callable[..., subprocess.Popen]
) -> None:
    with fast.client() as root:
        lease = root.request(job_request("7", ttl_s=1.0))
        step = step_daemon("7", ["sleep", "60"], dict(fast.env))
        # Nothing else heartbeats: the job's step daemon running is what keeps the lease.
        wait_for(lambda: root.get(lease.id).enforcement == "watchdog", 10, "the job's processes to be found")
        held_until = time.monotonic() + 4.0
        while time.monotonic() < held_until:
            assert root.get(lease.id).state == pb.LEASE_STATE_ACTIVE
            time.sleep(0.2)
        step.kill()
        step.wait()
        ended = wait_for(lambda: (got := root.get(lease.id)).state != pb.LEASE_STATE_ACTIVE and got, 10, "expiry")
        assert ended.state == pb.LEASE_STATE_EXPIRED


def test_the_watchdog_ends_a_jobs_processes_over_its_partition_but_not_its_step_daemon(
    fast: Daemon, step_daemon: Callable[..., subprocess.Popen]
) -> None:
    with fast.client() as root:
        lease = root.request(job_request("8"))  # 4096 MiB
        step = step_daemon("8", [sys.executable, str(APP), "--hold", "6000"], simgpu_env(fast, lease))
        assert step.stdout.readline().startswith("child ok 6000")
        ended = wait_for(lambda: (got := root.get(lease.id)).state != pb.LEASE_STATE_ACTIVE and got, 20, "the revoke")
        assert ended.state == pb.LEASE_STATE_REVOKED and "over its partition" in ended.end_reason
        assert step.wait(timeout=10) != 0  # its task was ended; it lived to see that
        assert "slurm job 8" in fast.log()


@pytest.fixture
def open_daemon() -> Iterator[Daemon]:
    """A fast daemon whose socket and simulated GPUs other users can reach (not under tmp_path, 0700)."""
    home = Path(tempfile.mkdtemp(prefix="bitshare-open-"))
    os.chmod(home, 0o755)
    daemon = Daemon(home, ["--simulate", "1x16GiB", "--grace", "1", "--sample-interval", "0.1"])
    try:
        with reachable_by_others(APP):
            yield daemon.start()
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_a_step_daemon_not_run_by_root_is_not_taken_for_the_job(
    open_daemon: Daemon, step_daemon: Callable[..., subprocess.Popen]
) -> None:
    with open_daemon.client() as root:
        lease = root.request(job_request("9"))
        env = simgpu_env(open_daemon, lease)
        step = step_daemon("9", [sys.executable, str(APP), "--hold", "100"], env, user="nobody")
        assert step.stdout.readline().startswith("child ok 100")
        gpus = wait_for(lambda: (g := root.gpus()[0]).unleased and g, 10, "the process to be measured")
        assert [p.user for p in gpus.unleased] == ["nobody"]  # a user's look-alike is not the job's
        assert root.get(lease.id).usage.used_mib == 0


def test_a_job_lease_survives_a_daemon_restart_and_is_found_again(
    fast: Daemon, step_daemon: Callable[..., subprocess.Popen]
) -> None:
    with fast.client() as root:
        lease = root.request(job_request("11", ttl_s=2.0))
    step_daemon("11", ["sleep", "60"], dict(fast.env))
    fast.kill9()
    fast.restart()
    with fast.client() as root:
        wait_for(lambda: root.get(lease.id).enforcement == "watchdog", 10, "the job to be found again")
        held_until = time.monotonic() + 3.0
        while time.monotonic() < held_until:
            assert root.get(lease.id).state == pb.LEASE_STATE_ACTIVE
            time.sleep(0.2)
