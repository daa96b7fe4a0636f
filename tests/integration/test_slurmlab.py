"""The Slurm lab itself (tests/support/slurmlab.py): it starts with its node idle, says why when it
cannot start, and leaves nothing behind, even when its test run was killed. Needs root and Slurm;
skips elsewhere. What Slurm does with jobs through bitshare is tests/integration/test_slurm.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support.harness import ROOT
from ..support.slurmlab import SlurmError, SlurmLab, lab_processes, parse_record, skip_reason, slurm_lab

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

# Starts a lab, says where it is, and stays until it is killed (never closing its lab).
ABANDONING = """
import time
from tests.support.slurmlab import slurm_lab
with slurm_lab(gpus=0) as lab:
    print(lab.dir, flush=True)
    time.sleep(120)
"""


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
