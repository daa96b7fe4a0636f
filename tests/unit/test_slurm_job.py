"""What Slurm says of jobs and nodes, read; and the lease a job's GPUs become (pure logic)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitshare.daemon.enforcement.slurm_steps import job_of_title
from bitshare.errors import UsageError
from bitshare.slurm.job import (
    Ask,
    Gres,
    expand_hostlist,
    lease_ask,
    parse_gres,
    parse_job,
    shards_per_gpu,
)
from bitshare.slurm.node import JobContext, export_lines, merge_comment

DATA = Path(__file__).resolve().parent / "data"


def test_a_shard_job_as_slurm_22_05_prints_it() -> None:
    job = parse_job((DATA / "scontrol_job_shard.txt").read_text())
    assert (job.id, job.name, job.user) == ("1", "job.sh", "bsjob")
    assert job.gres_on("localhost") == [Gres("shard", 4, (0,))]
    assert job.gres_on("elsewhere") == []


def test_a_gpu_job_as_slurm_22_05_prints_it() -> None:
    job = parse_job((DATA / "scontrol_job_gpu.txt").read_text())
    assert job.gres_on("localhost") == [Gres("gpu", 1, (0,))]


def test_an_admin_comment_with_spaces_is_read_whole() -> None:
    text = "JobId=5 JobName=x\n   UserId=a(1) GroupId=a(1)\n   AdminComment=ops note | bitshare lease 1 on n: GPU 0\n"
    assert parse_job(text).admin_comment == "ops note | bitshare lease 1 on n: GPU 0"


def test_an_answer_without_a_job_is_refused() -> None:
    with pytest.raises(UsageError, match="names no job"):
        parse_job("slurm_load_jobs error: Invalid job id specified\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu:1(IDX:0)", [Gres("gpu", 1, (0,))]),
        ("gpu:a100:2(IDX:0-1)", [Gres("gpu", 2, (0, 1))]),
        ("gpu:3(IDX:0,2-3)", [Gres("gpu", 3, (0, 2, 3))]),
        ("gpu:1(IDX:1),shard:0", [Gres("gpu", 1, (1,))]),
        ("gpu:4,shard:64", [Gres("gpu", 4), Gres("shard", 64)]),
        ("gpu:a100:4(S:0-1),shard:32", [Gres("gpu", 4), Gres("shard", 32)]),
        ("(null)", []),
    ],
)
def test_gres_strings(text: str, expected: list[Gres]) -> None:
    assert parse_gres(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("gpu[01-03,7],login", ["gpu01", "gpu02", "gpu03", "gpu7", "login"]), ("n1", ["n1"]), ("a[1-2]b", ["a1b", "a2b"])],
)
def test_hostlists(text: str, expected: list[str]) -> None:
    assert expand_hostlist(text) == expected


@given(st.lists(st.integers(0, 999), min_size=1, max_size=20, unique=True))
def test_a_hostlist_of_numbers_expands_to_them(numbers: list[int]) -> None:
    ranges = ",".join(f"{n:03d}" for n in numbers)
    assert expand_hostlist(f"node[{ranges}]") == [f"node{n:03d}" for n in numbers]


def test_shards_divide_among_gpus_or_are_refused() -> None:
    assert shards_per_gpu("gpu:4,shard:64") == 16
    assert shards_per_gpu("gpu:1") is None
    with pytest.raises(UsageError, match="do not divide evenly"):
        shards_per_gpu("gpu:3,shard:16")


def test_what_a_jobs_gpus_become() -> None:
    assert lease_ask([Gres("shard", 4, (0,))], 16) == Ask(1, 0.25, (0,))
    assert lease_ask([Gres("gpu", 2, (1, 3))], None) == Ask(2, 1.0, (1, 3))
    assert lease_ask([Gres("gpu", 2, ())], None) == Ask(2, 1.0, ())  # Slurm did not say which
    assert lease_ask([], 16) is None


@pytest.mark.parametrize(
    ("gres", "per_gpu", "message"),
    [
        ([Gres("gpu", 1, (0,)), Gres("shard", 2, (0,))], 16, "both gpu and shard"),
        ([Gres("shard", 4, (0, 1))], 16, "span GPUs"),
        ([Gres("shard", 20, (0,))], 16, "20 shards of a GPU that has 16"),
        ([Gres("shard", 4, (0,))], None, "declares no gpu and shard counts"),
    ],
)
def test_allocations_bitshare_cannot_lease_are_refused(gres: list[Gres], per_gpu: int | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        lease_ask(gres, per_gpu)


def test_the_job_context_comes_from_slurms_environment() -> None:
    env = {"SLURM_JOB_ID": "42", "SLURM_JOB_USER": "alice", "SLURMD_NODENAME": "n1", "SLURM_CLUSTER_NAME": "lab"}
    context = JobContext.from_environ({**env, "SLURM_JOB_RESTART_COUNT": "2"})
    assert context.request_id == "slurm-lab-42-2"
    assert JobContext.from_environ(env).request_id == "slurm-lab-42-0"  # a repeat of the same run: the same key
    with pytest.raises(UsageError, match="not run by Slurm"):
        JobContext.from_environ({"SLURM_JOB_USER": "alice"})


def test_bitshares_part_of_an_admin_comment_replaces_its_last_on_the_node_and_keeps_the_rest() -> None:
    assert merge_comment("(null)", "bitshare lease a on n1: GPU 0", "n1") == "bitshare lease a on n1: GPU 0"
    earlier = "ops: disk | bitshare lease a on n1: GPU 0 | bitshare lease b on n2: GPU 1"
    assert merge_comment(earlier, "bitshare: no lease on n1: full", "n1") == (
        "ops: disk | bitshare lease b on n2: GPU 1 | bitshare: no lease on n1: full"
    )


def test_task_prolog_lines_and_a_value_slurm_could_not_read() -> None:
    assert export_lines({"A": "1", "B": "x y"}) == "export A=1\nexport B=x y\n"
    with pytest.raises(UsageError, match="line break"):
        export_lines({"A": "1\nexport LD_PRELOAD=/evil.so"})


@pytest.mark.parametrize(
    ("title", "job"),
    [
        ("slurmstepd: [42.batch]", "42"),
        ("slurmstepd: [42.extern]", "42"),
        ("slurmstepd: [7.0]", "7"),
        ("slurmstepd: [42.batch] -c x", "42"),
        ("slurmstepd: [4x.batch]", None),
        ("python slurmstepd: [42.batch]", None),
        ("slurmstepd", None),
    ],
)
def test_step_daemon_titles(title: str, job: str | None) -> None:
    assert job_of_title(title) == job


def test_the_node_side_talks_to_the_nodes_daemon_whatever_the_jobs_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bitshare import paths
    from bitshare.cli.slurm_cmds import node_server

    monkeypatch.setenv("BITSHARE_SERVER", "gpu9.example.org:7443")  # a job passes its own to its task prolog
    monkeypatch.setattr(paths, "SYSTEM_CLIENT_CONFIG", Path("/nonexistent/client.toml"))
    assert node_server("") == f"unix:{paths.SYSTEM_SOCKET}"
    assert node_server("unix:/run/x.sock") == "unix:/run/x.sock"
    with pytest.raises(UsageError, match="on its Unix socket, not gpu1:7443"):
        node_server("gpu1:7443")
