"""`bitshare bench seed` end to end on a real daemon with a simulated GPU: four CuPy workloads
through remote CuPy, each under a 25% lease; its JSON, tables and plots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest

from bitshare.bench.report import baseline_failures, check_consistency, text_report
from bitshare.bench.seed import Plan, Workload, run_seed
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, free_port, make_token, run_cli
from .test_client_security import non_loopback_address


def test_a_short_seed_run_writes_consistent_results_and_plots(daemon: Daemon, tmp_path: Path) -> None:
    out = tmp_path / "seed"
    result = run_cli(daemon, "bench", "seed", "--duration", "2", "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "seed.json").read_text())
    assert data["simulated"] is True and data["label"].startswith("CPU-simulated")
    assert [w["name"] for w in data["workloads"]] == ["mlp-small", "mlp-medium", "mlp-large", "mlp-xlarge"]
    assert data["share"] == 0.25 and set(data["loads"]) == {"heavy", "light"}
    assert check_consistency(data) == []
    for load in ("heavy", "light"):
        result_of = data["loads"][load]
        assert all(w["seconds"] == 2 for w in result_of["sequential"])
        assert all(w["seconds"] == 8 for w in result_of["concurrent"])  # as long as the four slots
        assert all(w["samples"] > 0 for w in result_of["sequential"] + result_of["concurrent"])
        comparison = result_of["comparison"]
        ratios = [r["throughput_ratio"] for r in comparison["per_workload"].values()]
        assert abs(sum(ratios) - comparison["throughput_ratio_sum"]) < 1e-9
        concurrent = sum(w["samples"] for w in result_of["concurrent"])
        alone = sum(w["samples"] for w in result_of["sequential"])
        assert abs(comparison["normalised_total"] - concurrent / alone) < 1e-9
    light = data["loads"]["light"]
    for window in light["sequential"]:  # 40% of what each served flat out alone
        flat_out = next(w for w in data["loads"]["heavy"]["sequential"] if w["workload"] == window["workload"])
        assert abs(window["target_rate"] - 0.4 * flat_out["requests_per_s"]) < 1e-6
        assert window["latency_p50_ms"] <= window["latency_p99_ms"]
    assert (out / "seed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ElementTree.parse(out / "seed.svg").getroot().tag.endswith("svg")
    assert "heavy load" in result.stdout and "paper: 1.13" in result.stdout and "paper: 4x" in result.stdout
    with daemon.client() as client:  # every lease of the experiment ended
        assert not client.all_leases()
        ended = client.all_leases(include_ended=True)
        assert len(ended) == 8 and {lease.state for lease in ended} == {pb.LEASE_STATE_RELEASED}


def test_the_torchvision_workloads_run_through_remote_pytorch_on_simulated_gpus(daemon: Daemon, tmp_path: Path) -> None:
    """The paper's shape: clients with no GPU, their PyTorch models on the GPU server's worker."""
    pytest.importorskip("torchvision")
    out = tmp_path / "torch"
    args = ("--library", "torch", "--workloads", "mobilenet_v2", "--load", "heavy", "--duration", "1")
    result = run_cli(daemon, "bench", "seed", *args, "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "seed.json").read_text())
    assert data["label"].startswith("CPU-simulated: remote PyTorch from GPU-less clients")
    assert data["label"] in result.stdout
    [workload] = data["workloads"]
    assert workload["name"] == "mobilenet_v2" and "bitshare.bench.workloads.torch_model" in workload["command"]
    [window] = data["loads"]["heavy"]["sequential"]
    assert window["samples"] > 0 and check_consistency(data) == []


def test_a_users_own_program_speaks_the_line_protocol(daemon: Daemon, tmp_path: Path) -> None:
    program = "sh -c 'echo loading; echo ready; while read line; do echo \"done 8\"; done'"
    out = tmp_path / "mine"
    result = run_cli(
        daemon, "bench", "seed", "--load", "heavy", "--duration", "1", "--workload", program, "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "seed.json").read_text())
    (window,) = data["loads"]["heavy"]["sequential"]
    assert window["workload"] == "1-sh" and window["samples"] == 8 * window["requests"] > 0
    assert data["share"] == 1.0 and check_consistency(data) == []


def test_bad_options_are_refused_before_anything_runs(daemon: Daemon, tmp_path: Path) -> None:
    cases = [
        (["--load", "medium"], "--load must be light, heavy or both"),
        (["--duration", "0"], "--duration must be between 1 and 3600"),
        (["--gpu", "3"], "--gpu 3:"),
        (["--baseline", "time-slicing"], "--baseline needs NVIDIA GPUs"),
        (["--baseline", "mps", "--workload", "sh -c 'echo ready'"], "--baseline needs NVIDIA GPUs"),
        (["--baseline", "slicing"], "--baseline 'slicing': the baselines are time-slicing and mps"),
        (["--workloads", "resnet50"], "no built-in workload resnet50 here"),
        (["--library", "jax"], "--library must be torch, cupy or auto, got 'jax'"),
    ]
    for args, message in cases:
        result = run_cli(daemon, "bench", "seed", *args, "--out", str(tmp_path / "never"))
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1  # one line
    assert not (tmp_path / "never").exists()
    with daemon.client() as client:
        assert not client.all_leases(include_ended=True)


def test_the_workloads_reach_a_plaintext_daemon_off_loopback_as_seed_does(make_daemon, tmp_path: Path) -> None:
    host = non_loopback_address()
    tokens = tmp_path / "tokens.toml"
    token = make_token(tokens, "alice", "client")
    server = f"{host}:{free_port()}"
    daemon: Daemon = make_daemon(
        "--simulate", "1x16GiB", "--listen", server, "--allow-insecure-tcp", "--tokens-file", str(tokens)
    )
    program = "sh -c 'echo ready; while read line; do echo \"done 1\"; done'"
    out = tmp_path / "mine"
    args = ("--token", token, "--allow-insecure-tcp", "bench", "seed", "--load", "heavy", "--duration", "1")
    result = run_cli(daemon, *args, "--workload", program, "--out", str(out), server=server)
    assert result.returncode == 0, result.stderr + "".join(p.read_text() for p in (out / "logs").glob("*.log"))
    (window,) = json.loads((out / "seed.json").read_text())["loads"]["heavy"]["sequential"]
    assert window["samples"] > 0


def test_a_baseline_name_is_checked_before_the_daemon_is_reached(tmp_path: Path) -> None:
    nowhere = Daemon(tmp_path, [])  # never started: nothing listens on its socket
    result = run_cli(nowhere, "bench", "seed", "--baseline", "bare", "--out", str(tmp_path / "never"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "--baseline 'bare': the baselines are time-slicing and mps" in result.stderr
    reached = run_cli(nowhere, "bench", "seed", "--baseline", "mps", "--out", str(tmp_path / "never"))
    assert reached.returncode == 69, reached.stderr  # a known name goes on to the daemon: unreachable
    assert not (tmp_path / "never").exists()


def test_the_baselines_run_the_workloads_at_once_without_leases(daemon: Daemon, tmp_path: Path) -> None:
    """The orchestration of the baselines on real processes (the CLI refuses them on simulated GPUs:
    here the experiment is driven directly). Each workload reports the lease, GPU and MPS pipe it got.
    Where MPS cannot start (no nvidia-cuda-mps-control), that baseline's failure is kept and the rest runs."""
    program = 'echo "|$BITSHARE_LEASE_ID|$CUDA_VISIBLE_DEVICES|$CUDA_MPS_PIPE_DIRECTORY|" >&2; echo ready; '
    program += 'while read line; do echo "done 2"; done'
    workloads = [Workload(f"{n}-sh", ["sh", "-c", program]) for n in (1, 2)]
    mps_here = shutil.which("nvidia-cuda-mps-control") is not None
    chosen = ("time-slicing",) if mps_here else ("time-slicing", "mps")
    plan = Plan(workloads, ("heavy",), 1.0, 0.5, 0, daemon.env, chosen, "GPU-feed", 8192)
    with daemon.client() as client:
        heavy = run_seed(client, daemon.server, plan, tmp_path / "logs", lambda what, left: None)["heavy"]
        leases = client.all_leases(include_ended=True)
    assert len(leases) == 4  # two alone, two at once: the baselines took none
    slicing = heavy["baselines"]["time-slicing"]
    assert [w["workload"] for w in slicing["concurrent"]] == ["1-sh", "2-sh"]
    assert all(w["seconds"] == 2.0 and w["samples"] > 0 for w in slicing["concurrent"])
    for name in ("1-sh", "2-sh"):
        said = (tmp_path / "logs" / f"time-slicing-{name}.log").read_text().split("|")
        assert said[1:4] == ["", "GPU-feed", said[3]] and said[3].endswith("/no-mps") and not Path(said[3]).exists()
        leased = (tmp_path / "logs" / f"concurrent-{name}.log").read_text()
        assert any(f"|{lease.id}|" in leased for lease in leases)
    data = {"device": "sim", "label": "test", "duration_s": 1.0, "loads": {"heavy": heavy}}
    data["workloads"] = [{"name": w.name} for w in workloads]
    assert check_consistency(data) == []
    assert "heavy, bare time-slicing (no bitshare): ratios sum to" in text_report(data)
    if not mps_here:
        assert "nvidia-cuda-mps-control" in heavy["baselines"]["mps"]["error"]
        assert [failure.split(":")[0] for failure in baseline_failures(data)] == ["mps"]
