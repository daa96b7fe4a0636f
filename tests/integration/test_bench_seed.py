"""`bitshare bench seed` end to end on a real daemon with a simulated GPU: four CuPy workloads
through remote CuPy, each under a 25% lease; its JSON, tables and plots."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

from bitshare.bench.report import check_consistency
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, free_port, make_token, run_cli
from .test_client_security import non_loopback_address


def test_a_short_seed_run_writes_consistent_results_and_plots(daemon: Daemon, tmp_path: Path) -> None:
    out = tmp_path / "seed"
    result = run_cli(daemon, "bench", "seed", "--duration", "5", "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "seed.json").read_text())
    assert data["simulated"] is True and data["label"].startswith("CPU-simulated")
    assert [w["name"] for w in data["workloads"]] == ["mlp-small", "mlp-medium", "mlp-large", "mlp-xlarge"]
    assert data["share"] == 0.25 and set(data["loads"]) == {"heavy", "light"}
    assert check_consistency(data) == []
    for load in ("heavy", "light"):
        result_of = data["loads"][load]
        assert all(w["seconds"] == 5 for w in result_of["sequential"])
        assert all(w["seconds"] == 20 for w in result_of["concurrent"])  # as long as the four slots
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
        (["--bare"], "--bare needs a real GPU"),
        (["--workloads", "resnet50"], "no built-in workload resnet50 here"),
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
