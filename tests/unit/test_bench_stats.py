"""The seed experiment's pure parts: arrivals, windows, the comparison, the workload protocol."""

from __future__ import annotations

import io
import itertools
import math

import pytest

from bitshare.bench.protocol import parse_done, serve
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
