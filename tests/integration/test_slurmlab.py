"""The Slurm lab itself (tests/support/slurmlab.py): a real slurmctld and slurmd on localhost
schedule shards and whole GPUs, keep jobs across daemon restarts, drain the node when a prolog
fails, and leave nothing behind. Needs root and Slurm; skips elsewhere."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ..support.harness import ROOT, wait_for
from ..support.slurmlab import SlurmError, SlurmLab, job_user, lab_processes, parse_record, skip_reason, slurm_lab

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

# A job that shows who and where it is, then runs until its release file appears: nothing in
# these tests depends on how long anything takes. After 120 s unreleased it fails.
HELD = """#!/bin/sh
echo "user=$(id -un) gpus=${{SLURM_GPUS_ON_NODE:-}} shards=${{SLURM_SHARDS_ON_NODE:-}} job=$SLURM_JOB_ID"
i=0
while [ ! -e {release} ]; do
    i=$((i + 1)); [ $i -gt 1200 ] && exit 3
    sleep 0.1
done
"""

# Starts a lab, says where it is, and stays until it is killed (never closing its lab).
ABANDONING = """
import time
from tests.support.slurmlab import slurm_lab
with slurm_lab(gpus=0) as lab:
    print(lab.dir, flush=True)
    time.sleep(120)
"""


def held(lab: SlurmLab, name: str) -> tuple[str, Path]:
    """The script of a held job and the file that releases it."""
    release = lab.jobs_dir / f"release-{name}"
    return HELD.format(release=release), release


@pytest.fixture(scope="module")
def lab() -> Iterator[SlurmLab]:
    with slurm_lab() as made:
        root = made.dir
        yield made
    assert not root.exists()
    assert not lab_processes(root), "the lab left processes behind"


def test_the_node_is_idle_with_one_gpu_in_16_shards(lab: SlurmLab) -> None:
    assert lab.node_state() == "IDLE"
    node = lab.node()
    assert node["Gres"] == "gpu:1,shard:16", node
    assert node["CPUTot"] == "8"
    assert lab.node_reason() == ""
    assert oct(lab.dir.stat().st_mode & 0o7777) == "0o755"
    assert oct(lab.jobs_dir.stat().st_mode & 0o7777) == "0o1777"


def test_four_quarter_jobs_share_the_gpu_and_a_fifth_waits_for_one_to_end(lab: SlurmLab) -> None:
    releases = []
    jobs = []
    for index in range(5):
        script, release = held(lab, f"shard{index}")
        releases.append(release)
        jobs.append(lab.sbatch(script, "--gres=shard:4"))
        if index == 3:
            lab.wait_running(4)
    fifth = wait_for(
        lambda: info if (info := lab.job(jobs[4])).get("Reason") == "Resources" else None,
        20,
        "the fifth job to wait for resources",
    )
    assert fifth["JobState"] == "PENDING"
    assert {job["JobId"] for job in lab.running()} == {str(j) for j in jobs[:4]}
    assert lab.node()["CPUAlloc"] == "4"  # CPUs are left: the shards are what the fifth waits for

    releases[0].touch()
    assert lab.wait_job(jobs[0], {"COMPLETED"})["ExitCode"] == "0:0"
    lab.wait_job(jobs[4], {"RUNNING"})
    for release in releases[1:]:
        release.touch()
    for job in jobs:
        lab.wait_job(job, {"COMPLETED"})
    name, uid, _ = job_user()
    assert lab.job(jobs[4])["UserId"] == f"{name}({uid})"
    assert lab.output(jobs[4]).startswith(f"user={name} gpus=1 shards=4 ")


def test_a_whole_gpu_job_runs(lab: SlurmLab) -> None:
    script, release = held(lab, "gpu")
    job = lab.sbatch(script, "--gres=gpu:1")
    lab.wait_job(job, {"RUNNING"})
    assert lab.job(job)["TresPerNode"] == "gres:gpu:1"
    assert lab.job(job, detail=True)["GRES"] == "gpu:1(IDX:0)"
    release.touch()
    lab.wait_job(job, {"COMPLETED"})
    assert "gpus=1 shards= " in lab.output(job)


def test_a_running_job_outlives_restarts_of_slurmctld_and_slurmd(lab: SlurmLab) -> None:
    script, release = held(lab, "restarts")
    job = lab.sbatch(script, "--gres=shard:4", "--comment=survives restarts")
    lab.wait_job(job, {"RUNNING"})
    wait_for(lambda: lab.output(job), 20, "the job's script to start")  # RUNNING comes first
    lab.scontrol("update", f"JobId={job}", "AdminComment=bitshare lease=abc gpus=0 (two words)")
    steps = {p.pid for p in lab.processes() if p.name().startswith("slurmstepd")}
    assert len(steps) == 2, steps  # the job's extern step and its batch step
    ctld, slurmd = lab.pid("slurmctld"), lab.pid("slurmd")

    lab.restart_slurmctld()
    assert lab.pid("slurmctld") != ctld
    assert lab.job(job)["JobState"] == "RUNNING"
    lab.restart_slurmd()
    assert lab.pid("slurmd") != slurmd
    info = lab.job(job)
    assert info["JobState"] == "RUNNING"
    assert info["AdminComment"] == "bitshare lease=abc gpus=0 (two words)"  # spaces and "=" inside a value
    assert info["Comment"] == "survives restarts"
    assert steps <= {p.pid for p in lab.processes()}

    release.touch()
    assert lab.wait_job(job, {"COMPLETED"})["ExitCode"] == "0:0"
    assert lab.job(999999) == {}  # a job slurmctld never had


def test_parse_record_keeps_spaces_and_equals_signs_inside_free_text() -> None:
    line = "JobId=7 JobState=PENDING Reason=Prolog error x=1 Comment=a b=c  StdOut=/tmp/o Power= TresPerNode=g:1 "
    assert parse_record(line) == {
        "JobId": "7",
        "JobState": "PENDING",
        "Reason": "Prolog error x=1",
        "Comment": "a b=c",
        "StdOut": "/tmp/o",
        "Power": "",
        "TresPerNode": "g:1",
    }


def test_a_failing_prolog_drains_the_node_and_requeues_the_job(tmp_path: Path) -> None:
    passes = tmp_path / "prolog-passes"
    prolog = tmp_path / "prolog"
    prolog.write_text(f"#!/bin/sh\n[ -e {passes} ] && exit 0\necho no >&2\nexit 1\n")
    prolog.chmod(0o755)
    with slurm_lab(prolog=prolog, gpus=2, shards_per_gpu=4) as lab:
        root = lab.dir
        daemons = [lab.pid(name) for name in ("munged", "slurmctld", "slurmd")]
        assert lab.node()["Gres"] == "gpu:2,shard:8"
        job = lab.sbatch("#!/bin/sh\necho ran\n", "--gres=shard:4")
        info = wait_for(
            lambda: i if (i := lab.job(job)).get("JobState") == "PENDING" and int(i["Restarts"]) >= 1 else None,
            30,
            "the job to be requeued",
        )
        assert info["Reason"] != "launch_failed_requeued_held"  # nohold_on_prolog_fail: not held
        assert "DRAIN" in lab.node()["State"]
        assert lab.node_reason() == "Prolog error"

        passes.touch()
        lab.resume_node()
        assert lab.node_state() in {"IDLE", "MIXED", "ALLOCATED"}
        lab.wait_job(job, {"COMPLETED"}, timeout=30)  # once the requeued job may start again (CRED_EXPIRE_S)
        assert lab.output(job) == "ran\n"

        # A job still running when the lab ends ends with it.
        script, _ = held(lab, "never")
        unreleased = lab.sbatch(script, "--gres=gpu:2")
        lab.wait_job(unreleased, {"RUNNING"})
        wait_for(lambda: lab.output(unreleased), 20, "the job's script to start")
        left = [p for p in lab.processes() if p.pid not in daemons]
        assert {p.name() for p in left} >= {"slurmstepd", "slurm_script", "sleep"}, left
    assert not root.exists()
    assert not lab_processes(root)
    assert not [pid for pid in daemons if pid is not None and psutil.pid_exists(pid)]
    assert not [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_lab_that_cannot_start_says_why_and_leaves_nothing() -> None:
    before = {p.name for p in Path("/tmp").glob("bs-slurmlab-*")}
    with pytest.raises(SlurmError) as caught, slurm_lab(extra_conf="NoSuchSetting=1"):
        pass
    message = str(caught.value)
    assert message.startswith("slurmctld exited 1 at start")
    assert "unrecognized key: NoSuchSetting" in message  # the tail of what slurmctld said
    assert {p.name for p in Path("/tmp").glob("bs-slurmlab-*")} <= before


def test_a_lab_whose_test_run_was_killed_is_ended_by_the_next_one() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", ABANDONING], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None and owner.stderr is not None
        line = owner.stdout.readline().strip()  # the lab's own deadlines bound this
        assert line, owner.stderr.read()
        root = Path(line)
        assert root.is_dir()
    finally:
        owner.kill()  # no chance to close its lab
        owner.wait(timeout=10)
    assert lab_processes(root) and root.exists()
    with slurm_lab(gpus=0):
        assert not root.exists()
        assert not lab_processes(root)
