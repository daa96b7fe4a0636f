"""bitshare as Slurm's GPU-sharing enforcer, on a real Slurm (Debian's slurm-wlm 22.05 and munge).

One node on localhost declares one GPU as ``gpu:1`` and ``shard:16``; its slurmd runs
``bitshare-slurm-prolog``, ``-task-prolog`` and ``-epilog`` against a bitshared on simulated
GPUs (16 GiB). Jobs run as a normal user, hold simulated device memory through
tests/apps/slurm_job.py and wait for the test to tell them to end.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bitshare.client.connection import Client, LeaseRequest
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support import slurmlab
from ..support.harness import Daemon, wait_for
from ..support.reachable import reachable_by_others

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "apps" / "slurm_job.py"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(bool(slurmlab.skip_reason()), reason=slurmlab.skip_reason() or "")


class Node:
    """The Slurm lab, its node's bitshared, and the job user."""

    def __init__(self, lab: slurmlab.SlurmLab, daemon: Daemon, user: str) -> None:
        self.lab = lab
        self.daemon = daemon
        self.user = user
        self.out = lab.jobs_dir

    def client(self) -> Client:
        return self.daemon.client()

    @property
    def capacity_mib(self) -> int:
        """What leases may take of the GPU (its memory less the daemon's reserve)."""
        with self.client() as client:
            return client.gpus()[0].capacity_mib

    def submit(self, gres: str, mib: int = 100, wait: bool = True, before: str = "") -> int:
        """A job holding ``mib`` of its GPU until :meth:`finish` (or ending at once: ``wait=False``)."""
        flag = "" if wait else " --no-wait"
        script = f"#!/bin/sh\n{before}exec {sys.executable} {APP} {self.out} {mib}{flag}\n"
        return self.lab.sbatch(script, f"--gres={gres}", user=self.user)

    def report(self, job: int, timeout: float = 30.0) -> dict:
        """What the job's program saw, once it has written it."""
        path = self.out / f"{job}.json"
        wait_for(path.exists, timeout, f"job {job} to report")
        return json.loads(path.read_text())

    def finish(self, *jobs: int) -> None:
        for job in jobs:
            (self.out / f"{job}.go").touch()

    def job_leases(self, job: int, include_ended: bool = False) -> list[pb.Lease]:
        with self.client() as client:
            return client.all_leases(include_ended=include_ended, slurm_job=str(job))

    def lease_of(self, job: int) -> pb.Lease:
        leases = self.job_leases(job, include_ended=True)
        assert len(leases) == 1, (job, leases, self.daemon.log()[-3000:])
        return leases[0]

    def wait_lease_ended(self, job: int, timeout: float = 15.0) -> pb.Lease:
        return wait_for(
            lambda: (lease := self.lease_of(job)).state not in (pb.LEASE_STATE_ACTIVE, pb.LEASE_STATE_QUEUED) and lease,
            timeout,
            f"job {job}'s lease to end",
        )

    def user_processes(self) -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["username"]) if p.info["username"] == self.user]


def _launcher(where: Path, name: str, server: str, *args: str) -> Path:
    """What slurm.conf names: the installed launcher, given the test's daemon (a site's is named
    in /etc/bitshare/client.toml, or is the system daemon)."""
    path = where / name
    path.write_text(f"#!/bin/sh\nexec {BIN / name} --server {server} {' '.join(args)}\n")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    user, _, _ = slurmlab.job_user()
    home = Path(tempfile.mkdtemp(prefix="bitshare-slurm-node-"))
    home.chmod(0o755)  # the job user reaches the daemon's socket and simulated GPUs through it
    (home / "bitshared").mkdir(mode=0o755)
    daemon = Daemon(home / "bitshared", ["--simulate", "1x16GiB", "--grace", "1", "--sample-interval", "0.2"])
    try:
        with reachable_by_others(APP):
            daemon.start()
            prolog = _launcher(home, "bitshare-slurm-prolog", daemon.server, "--ttl", "60")
            task_prolog = _launcher(home, "bitshare-slurm-task-prolog", daemon.server)
            epilog = _launcher(home, "bitshare-slurm-epilog", daemon.server)
            accounting = slurmlab.accounting_skip_reason() is None
            labs = slurmlab.slurm_lab(prolog=prolog, task_prolog=task_prolog, epilog=epilog, accounting=accounting)
            with labs as lab:
                yield Node(lab, daemon, user)
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fresh(node: Node) -> Iterator[Node]:
    """The node with no job and no lease left by the test before."""
    yield node
    for job in node.lab.squeue():
        if job["State"] in ("PENDING", "RUNNING", "CONFIGURING"):
            node.lab.scancel(int(job["JobId"]))
    active = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING"}
    wait_for(lambda: not [j for j in node.lab.squeue() if j["State"] in active], 30, "the test's jobs to end")
    if "DRAIN" in node.lab.node().get("State", ""):
        node.lab.resume_node()


def test_four_quarter_jobs_run_at_once_each_on_its_own_lease_and_a_fifth_waits(fresh: Node) -> None:
    jobs = [fresh.submit("shard:4", mib=3000) for _ in range(5)]
    running = fresh.lab.wait_running(4)
    first_four = sorted(int(job["JobId"]) for job in running)
    (fifth,) = set(jobs) - set(first_four)
    assert fresh.lab.job(fifth)["Reason"] == "Resources"
    quarter = fresh.capacity_mib // 4
    leases = {}
    for job in first_four:
        report = fresh.report(job)
        lease = fresh.lease_of(job)
        leases[job] = lease
        assert report["result"] == "ok 3000" and report["agent"]
        assert report["env"]["BITSHARE_LEASE_ID"] == lease.id
        assert report["env"]["BITSHARE_GPU_MEMORY_MIB"] == str(quarter)
        assert lease.owner == f"user:{fresh.user}" and lease.state == pb.LEASE_STATE_ACTIVE
        assert [a.memory_mib for a in lease.allocations] == [quarter]
        assert f"bitshare lease {lease.id} on localhost: GPU 0 {quarter} MiB" in fresh.lab.job(job).get(
            "AdminComment", ""
        )
        # The job's processes are the lease's: the daemon measures them there.
        wait_for(lambda job=job: fresh.lease_of(job).usage.used_mib == 3000, 15, f"job {job}'s memory measured")
    assert len({lease.id for lease in leases.values()}) == 4
    fresh.finish(first_four[0])
    fresh.lab.wait_job(first_four[0], {"COMPLETED"})
    assert fresh.wait_lease_ended(first_four[0]).state == pb.LEASE_STATE_RELEASED
    fresh.lab.wait_job(fifth, {"RUNNING"})
    assert fresh.report(fifth)["result"] == "ok 3000"
    assert fresh.lease_of(fifth).state == pb.LEASE_STATE_ACTIVE


def test_slurms_accounting_keeps_which_lease_a_job_had(fresh: Node) -> None:
    if not fresh.lab.accounting:
        pytest.skip(slurmlab.accounting_skip_reason() or "the lab keeps no accounting")
    job = fresh.submit("shard:4", wait=False)
    fresh.lab.wait_job(job, {"COMPLETED"})
    lease = fresh.wait_lease_ended(job)
    rows = wait_for(
        lambda: [r for r in fresh.lab.sacct(job, "JobID", "State", "AdminComment") if r["JobID"] == str(job)],
        15,
        "accounting to have the job",
    )
    assert rows[0]["AdminComment"] == f"bitshare lease {lease.id} on localhost: GPU 0 {fresh.capacity_mib // 4} MiB"


def test_scancel_releases_the_lease_within_seconds(fresh: Node) -> None:
    job = fresh.submit("shard:4")
    fresh.lab.wait_job(job, {"RUNNING"})
    pid = fresh.report(job)["pid"]
    fresh.lab.scancel(job)
    assert fresh.wait_lease_ended(job, timeout=10).state == pb.LEASE_STATE_RELEASED
    fresh.lab.wait_job(job, {"CANCELLED"})
    assert not psutil.pid_exists(pid)


def test_a_job_past_its_partition_is_ended_by_the_watchdog_and_slurm_records_it_failed(fresh: Node) -> None:
    # The program sets no limit of its own (no agent, no pool limit): only the watchdog holds it.
    ignore = "export BITSHARE_AGENT=0 BITSHARE_GPU_MEMORY_MIB=0\n"
    job = fresh.submit("shard:4", mib=6000, before=ignore)
    assert fresh.report(job)["result"] == "ok 6000"
    lease = fresh.wait_lease_ended(job, timeout=20)
    assert lease.state == pb.LEASE_STATE_REVOKED and "over its partition" in lease.end_reason
    record = fresh.lab.wait_job(job, {"FAILED"})
    with fresh.client() as client:  # the audit log says why, by job
        revoke = [e for e in client.events(lease_id=lease.id) if e.kind == "revoked"]
    assert revoke and revoke[0].detail.startswith(f"slurm job {job}: over its partition")
    assert record["ExitCode"] != "0:0"


def test_a_step_ending_does_not_end_the_jobs_lease(fresh: Node) -> None:
    first = "srun --overlap -n1 true\n"  # a step of its own, which starts and ends
    job = fresh.submit("shard:4", mib=500, before=first)
    assert fresh.report(job)["result"] == "ok 500"  # after that step had ended
    lease = fresh.lease_of(job)
    assert lease.state == pb.LEASE_STATE_ACTIVE
    assert fresh.report(job)["env"]["BITSHARE_LEASE_ID"] == lease.id
    fresh.finish(job)
    fresh.lab.wait_job(job, {"COMPLETED"})


def test_a_step_of_a_job_whose_lease_has_ended_is_refused(fresh: Node) -> None:
    # The job's first step runs on its lease; its next step starts after an admin revoked it.
    then = "srun --overlap -n1 sh -c 'echo step ran'\n"
    job = fresh.lab.sbatch(
        f"#!/bin/sh\n{sys.executable} {APP} {fresh.out} 100\n{then}", "--gres=shard:4", user=fresh.user
    )
    fresh.report(job)
    with fresh.client() as admin:
        admin.revoke(fresh.lease_of(job).id, "maintenance")
    fresh.finish(job)
    fresh.lab.wait_job(job, {"COMPLETED", "FAILED"})
    output = fresh.lab.output(job)
    assert "TaskProlog failed" in output and "step ran" not in output, output


def test_a_whole_gpu_job_gets_the_whole_gpu(fresh: Node) -> None:
    job = fresh.submit("gpu:1", mib=12000)
    assert fresh.report(job)["result"] == "ok 12000"
    lease = fresh.lease_of(job)
    assert lease.spec.fraction == 1.0 and [a.memory_mib for a in lease.allocations] == [fresh.capacity_mib]
    fresh.finish(job)
    fresh.lab.wait_job(job, {"COMPLETED"})


def test_a_lease_that_does_not_fit_fails_the_prolog_and_slurm_requeues_the_job(fresh: Node) -> None:
    with fresh.client() as tenant:  # another tenant, outside Slurm, holds most of the GPU
        outside = tenant.request(LeaseRequest(fraction=0.9, ttl_s=600, wait=False))
        job = fresh.submit("shard:4")
        record = wait_for(
            lambda: (r := fresh.lab.job(job)).get("JobState") == "PENDING" and int(r.get("Restarts", 0)) >= 1 and r,
            30,
            "the job to be requeued",
        )
        assert "bitshare: no lease on localhost: no GPU has" in record.get("AdminComment", "")
        assert fresh.job_leases(job, include_ended=True) == []  # nothing left of the attempt
        assert fresh.lab.node_reason() == "Prolog error"
        tenant.release(outside.id)
    fresh.lab.resume_node()
    fresh.lab.wait_job(job, {"RUNNING"}, timeout=60)
    assert fresh.report(job)["result"] == "ok 100"
    assert fresh.lease_of(job).state == pb.LEASE_STATE_ACTIVE


def test_twenty_jobs_leave_nothing_behind(fresh: Node) -> None:
    jobs = [fresh.submit("shard:4", wait=False) for _ in range(20)]
    for job in jobs:
        fresh.lab.wait_job(job, {"COMPLETED"}, timeout=120)
    for job in jobs:
        assert fresh.wait_lease_ended(job).state == pb.LEASE_STATE_RELEASED
    with fresh.client() as client:
        assert client.all_leases() == []
        simgpu = Path(client.info.simgpu_directory)
    wait_for(lambda: not fresh.user_processes(), 10, "the jobs' processes to be gone")
    assert sorted(p.name for p in simgpu.iterdir()) == []
    assert not [p for p in Path(tempfile.gettempdir()).glob("bitshare-agent-*") if p.owner() == fresh.user]


def test_restarts_of_slurm_and_of_bitshared_keep_the_jobs_leases(fresh: Node) -> None:
    jobs = [fresh.submit("shard:4", mib=1000) for _ in range(2)]
    for job in jobs:
        fresh.lab.wait_job(job, {"RUNNING"})
        fresh.report(job)
    before = {job: fresh.lease_of(job).id for job in jobs}
    fresh.lab.restart_slurmctld()
    fresh.lab.restart_slurmd()
    fresh.daemon.kill9()
    fresh.daemon.restart()
    for job in jobs:
        assert fresh.lab.job(job)["JobState"] == "RUNNING"
        lease = fresh.lease_of(job)
        assert (lease.id, lease.state) == (before[job], pb.LEASE_STATE_ACTIVE)
        # Found again after the restart: the job's processes are measured on the same lease.
        wait_for(lambda job=job: fresh.lease_of(job).usage.used_mib == 1000, 15, f"job {job} measured again")
    fresh.finish(*jobs)
    for job in jobs:
        fresh.lab.wait_job(job, {"COMPLETED"})
        assert fresh.wait_lease_ended(job).state == pb.LEASE_STATE_RELEASED
