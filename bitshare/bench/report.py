"""The seed experiment's results as the paper shows them: a table per load (its Tables 1-4),
the normalised totals (its Figures 4 and 5) next to the published numbers, and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..present.table import table
from .baselines import TITLES

MODES = ("sequential", "concurrent")


def text_report(data: dict[str, Any]) -> str:
    lines = [f"seed experiment on {data['device']} ({data['label']}), slot {data['duration_s']:g}s"]
    for load, result in data["loads"].items():
        lines += ["", f"{load} load"]
        headers = ["WORKLOAD", "MODE", "SAMPLES/S", "TIME S", "SAMPLES", "UTIL %", "MEMORY MiB"]
        if load == "light":
            headers += ["ASKED REQ/S", "DONE REQ/S", "DROPPED", "P50 MS", "P99 MS"]
        rows = []
        for mode, windows in _runs(result):
            for window in windows:
                row = [window["workload"], mode, _f(window["samples_per_s"]), _f(window["seconds"], 0)]
                row += [window["samples"], _f(window["util_pct"], 0), window["memory_mib"]]
                if load == "light":
                    row += [_f(window["target_rate"]), _f(window["requests_per_s"]), window["dropped"]]
                    row += [_f(window["latency_p50_ms"]), _f(window["latency_p99_ms"])]
                rows.append(row)
        lines.append(table(headers, rows))
        lines.append("")
        lines.append(comparison_text(load, result))
    return "\n".join(lines)


def comparison_text(load: str, result: dict[str, Any]) -> str:
    comparison, paper = result["comparison"], result["paper"]
    rows = [
        [name, _f(r["throughput_ratio"], 3), _f(r["normalised_samples"], 2), _f(r["p99_ratio"], 2)]
        for name, r in comparison["per_workload"].items()
    ]
    lines = [table(["WORKLOAD", "CONCURRENT/ALONE RATE", "NORMALISED SAMPLES", "P99 CONCURRENT/ALONE"], rows)]
    lines.append(
        f"{load}: throughput ratios sum to {_f(comparison['throughput_ratio_sum'], 2)} "
        f"(paper: {paper['throughput_ratio_sum']:g}); all samples, concurrent over one after another: "
        f"{_f(comparison['normalised_total'], 2)}x (paper: {paper['normalised_total']:g}x)"
    )
    for name, baseline in result.get("baselines", {}).items():
        title = f"{load}, {TITLES.get(name, name)} (no bitshare)"
        if "error" in baseline:
            lines.append(f"{title}: failed: {baseline['error']}")
            continue
        bare = baseline["comparison"]
        lines.append(
            f"{title}: ratios sum to {_f(bare['throughput_ratio_sum'], 2)}, "
            f"normalised total {_f(bare['normalised_total'], 2)}x; "
            f"bitshare over it: {_f(_over(comparison['throughput_ratio_sum'], bare['throughput_ratio_sum']), 3)}"
        )
    return "\n".join(lines)


def baseline_failures(data: dict[str, Any]) -> list[str]:
    """``name: why`` for each baseline that failed (once, whatever the loads)."""
    failed: dict[str, str] = {}
    for result in data["loads"].values():
        for name, baseline in result.get("baselines", {}).items():
            if "error" in baseline:
                failed.setdefault(name, baseline["error"])
    return [f"{name}: {why}" for name, why in failed.items()]


def _runs(result: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(mode, windows) of each run of one load: the leased ones, then the baselines that ran."""
    runs = [(mode, result[mode]) for mode in MODES]
    for name, baseline in result.get("baselines", {}).items():
        if "concurrent" in baseline:
            runs.append((name, baseline["concurrent"]))
    return runs


def _over(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def write_plots(data: dict[str, Any], out: Path) -> list[Path]:
    """seed.png and seed.svg: per load, each workload's samples concurrently over its samples
    alone, for bitshare (and bare), with the paper's figures. Needs matplotlib (bitshare[bench])."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    loads = list(data["loads"])
    figure, axes = pyplot.subplots(1, len(loads), figsize=(6 * len(loads), 4.2), squeeze=False)
    for axis, load in zip(axes[0], loads, strict=True):
        result = data["loads"][load]
        names = list(result["comparison"]["per_workload"])
        series = [("bitshare", result["comparison"])]
        for name, baseline in result.get("baselines", {}).items():
            if "comparison" in baseline:
                series.append((TITLES.get(name, name), baseline["comparison"]))
        width = 0.8 / len(series)
        for offset, (label, comparison) in enumerate(series):
            values = [comparison["per_workload"][n]["normalised_samples"] or 0 for n in names]
            values.append(comparison["normalised_total"] or 0)
            positions = [i + offset * width for i in range(len(names) + 1)]
            axis.bar(positions, values, width, label=label)
        paper = result["paper"]
        low, high = paper["per_workload"]
        if load == "light":
            axis.axhline(paper["normalised_total"], color="black", linestyle="--", label="paper (4x)")
        else:
            axis.axhspan(low, high, color="grey", alpha=0.25, label=f"paper per workload ({low:g}-{high:g})")
            axis.axhline(paper["normalised_total"], color="black", linestyle="--", label="paper total")
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(names) + 1)], [*names, "all"], rotation=20)
        axis.set_ylabel("samples concurrently / samples alone")
        axis.set_title(f"{load} load")
        axis.legend(fontsize="small")
    figure.suptitle(f"seed experiment: {data['device']} ({data['label']})")
    figure.tight_layout()
    written = []
    for suffix in ("png", "svg"):
        path = out / f"seed.{suffix}"
        figure.savefig(path, dpi=110)
        written.append(path)
    pyplot.close(figure)
    return written


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def check_consistency(data: dict[str, Any]) -> list[str]:
    """What is wrong with a results file (empty when nothing): every window's samples equal its
    rate times its time, utilisation is a percentage, and every run (baselines too) has every workload."""
    problems = []
    for load, result in data["loads"].items():
        names = [w["name"] for w in data["workloads"]]
        for mode, windows in _runs(result):
            if [w["workload"] for w in windows] != names:
                problems.append(f"{load} {mode}: workloads {[w['workload'] for w in windows]} != {names}")
            for w in windows:
                if abs(w["samples_per_s"] * w["seconds"] - w["samples"]) > 0.5:
                    problems.append(f"{load} {mode} {w['workload']}: rate x time != samples")
                if w["util_pct"] is not None and not 0 <= w["util_pct"] <= 100:
                    problems.append(f"{load} {mode} {w['workload']}: utilisation {w['util_pct']}")
    return problems
