"""The seed experiment's pure parts: arrivals, windows, the comparison, the workload protocol, the
baselines' refusals and environments, the report."""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path

import pytest

from bitshare.bench.baselines import environment, prepared, refusal
from bitshare.bench.protocol import parse_done, serve
from bitshare.bench.report import baseline_failures, check_consistency, text_report
from bitshare.bench.seed import Plan, Workload
from bitshare.bench.stats import Window, compare, percentile, poisson_arrivals


def test_poisson_arrivals_have_the_asked_rate_and_are_reproducible() -> None:
    times = poisson_arrivals(200.0, 50.0, seed=3)
    assert times == poisson_arrivals(200.0, 50.0, seed=3) != poisson_arrivals(200.0, 50.0, seed=4)
    assert times == sorted(times) and times[0] > 0 and times[-1] < 50.0
    assert abs(len(times) / 50.0 - 200.0) < 200.0 * 0.05  # 10,000 expected: within 5%
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert abs(sum(gaps) / len(gaps) - 1 / 200.0) < 0.05 / 200.0
    with pytest.raises(ValueError, match="must be positive"):
        poisson_arrivals(0, 1.0, seed=1)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0 and percentile(values, 1.0) == 100.0
    assert math.isnan(percentile([], 0.5))


def test_the_comparison_gives_ratios_per_workload_and_in_total() -> None:
    alone = [Window("a", 10.0, requests=100, samples=1000, latencies_s=[0.01] * 100), Window("b", 10.0, samples=500)]
    shared = [Window("a", 40.0, requests=400, samples=4000, latencies_s=[0.02] * 400), Window("b", 40.0, samples=1000)]
    result = compare(alone, shared)
    a, b = result["per_workload"]["a"], result["per_workload"]["b"]
    assert a["throughput_ratio"] == 1.0 and a["normalised_samples"] == 4.0 and a["p99_ratio"] == 2.0
    assert b["throughput_ratio"] == 0.5 and b["normalised_samples"] == 2.0 and math.isnan(b["p99_ratio"])
    assert result["throughput_ratio_sum"] == 1.5
    assert result["normalised_total"] == 5000 / 1500


def test_a_window_summary_has_rates_and_latency_percentiles() -> None:
    summary = Window("a", 4.0, requests=8, samples=256, latencies_s=[0.001 * n for n in range(1, 9)]).summary()
    assert summary["samples_per_s"] == 64.0 and summary["requests_per_s"] == 2.0
    assert summary["latency_p50_ms"] == 4.0 and summary["latency_p99_ms"] == 8.0
    assert summary["util_pct"] is None and "latencies_s" not in summary


def test_serve_answers_each_run_line_and_ignores_others() -> None:
    counts = iter(range(1, 100))
    out = io.StringIO()
    served = serve(lambda: next(counts), stdin=io.StringIO("run\nhello\nrun\n\nrun\n"), stdout=out)
    assert served == 3
    assert out.getvalue().splitlines() == ["ready", "done 1", "done 2", "done 3"]


def test_serve_warms_up_before_it_says_ready() -> None:
    calls: list[int] = []
    out = io.StringIO()
    serve(lambda: calls.append(1) or 4, warmup_s=0.05, stdin=io.StringIO("run\n"), stdout=out)
    assert len(calls) >= 2  # at least one warm-up step, then the one request
    assert out.getvalue().splitlines() == ["ready", "done 4"]  # warm-up steps are not reported


def test_done_lines_are_parsed_strictly() -> None:
    assert parse_done("done 32\n") == 32 and parse_done("loading weights") is None and parse_done("ready") is None
    for bad in ("done", "done x", "done -1", "done 1.5"):
        with pytest.raises(ValueError, match="a workload printed"):
            parse_done(bad)


# ----- the baselines ---------------------------------------------------------------------------


def test_baselines_are_refused_where_they_cannot_mean_what_they_say() -> None:
    assert refusal((), simulated=True, local=False, mps_control=None) is None  # none asked: nothing to refuse
    simulated = refusal(("time-slicing",), simulated=True, local=True, mps_control="/usr/bin/x")
    assert simulated is not None and simulated.startswith("--baseline needs NVIDIA GPUs")
    remote = refusal(("time-slicing",), simulated=False, local=False, mps_control="/usr/bin/x")
    assert remote is not None and "on this host without bitshare" in remote
    no_mps = refusal(("time-slicing", "mps"), simulated=False, local=True, mps_control=None)
    assert no_mps is not None and no_mps.startswith("--baseline mps needs nvidia-cuda-mps-control")
    assert refusal(("time-slicing",), simulated=False, local=True, mps_control=None) is None
    assert refusal(("mps", "time-slicing"), simulated=False, local=True, mps_control="/usr/bin/x") is None


def test_a_baselines_environment_shows_one_gpu_and_no_mps_but_its_own(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "CUDA_MPS_PIPE_DIRECTORY": "/tmp/theirs", "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "10"}
    slicing = environment(base, "GPU-1234", tmp_path)
    assert slicing == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "GPU-1234", "CUDA_MPS_PIPE_DIRECTORY": str(tmp_path)}
    mps = environment(base, "GPU-1234", tmp_path, memory_limit_mib=20480)
    assert mps["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=20480M" and "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in mps
    assert base["CUDA_MPS_PIPE_DIRECTORY"] == "/tmp/theirs"  # the caller's mapping is left as it was


def test_time_slicing_runs_against_an_empty_pipe_directory_removed_after() -> None:
    with prepared("time-slicing", {}, 0, "GPU-1234", 1024) as env:
        pipe = Path(env["CUDA_MPS_PIPE_DIRECTORY"])
        assert pipe.is_dir() and not any(pipe.iterdir()) and "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT" not in env
    assert not pipe.parent.exists()


def test_the_plans_length_counts_each_baseline_as_a_concurrent_run() -> None:
    def plan(*baselines: str) -> Plan:
        work = [Workload(str(n), ["true"]) for n in range(4)]
        return Plan(work, ("heavy", "light"), 5.0, 0.25, 0, {}, baselines=baselines)

    assert plan().seconds() == 2 * 40 and plan("time-slicing", "mps").seconds() == 4 * 40


def _window(name: str, seconds: float, samples: int) -> dict:
    return Window(name, seconds, requests=samples, samples=samples).summary()


def test_the_report_shows_each_baseline_beside_bitshare_and_says_which_failed() -> None:
    sequential = [_window("a", 10.0, 100), _window("b", 10.0, 100)]
    concurrent = [_window("a", 20.0, 150), _window("b", 20.0, 150)]
    comparison = {"per_workload": {}, "throughput_ratio_sum": 1.5, "normalised_total": 1.5}
    bare = {"per_workload": {}, "throughput_ratio_sum": 1.2, "normalised_total": 1.2}
    heavy = {
        "sequential": sequential,
        "concurrent": concurrent,
        "comparison": comparison,
        "paper": {"throughput_ratio_sum": 1.13, "normalised_total": 1.13},
        "baselines": {
            "time-slicing": {"concurrent": [_window("a", 20.0, 120), _window("b", 20.0, 120)], "comparison": bare},
            "mps": {"error": "nvidia-cuda-mps-control -d failed for GPU 0: no"},
        },
    }
    data = {"device": "H200", "label": "NVIDIA GPU", "duration_s": 10.0, "loads": {"heavy": heavy}}
    data["workloads"] = [{"name": "a"}, {"name": "b"}]
    text = text_report(data)
    assert "heavy, bare time-slicing (no bitshare): ratios sum to 1.20" in text
    assert "bitshare over it: 1.250" in text
    assert "heavy, bare MPS (no bitshare): failed: nvidia-cuda-mps-control -d failed" in text
    assert sum(line.split()[1:2] == ["time-slicing"] for line in text.splitlines()) == 2  # its windows
    assert baseline_failures(data) == ["mps: nvidia-cuda-mps-control -d failed for GPU 0: no"]
    assert check_consistency(data) == []
    heavy["baselines"]["time-slicing"]["concurrent"].pop()
    assert check_consistency(data) == ["heavy time-slicing: workloads ['a'] != ['a', 'b']"]
