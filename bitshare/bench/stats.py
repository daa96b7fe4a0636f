"""The seed experiment's arithmetic (pure): arrival schedules, what one workload did in a window,
and how sharing compares with running one after another."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

LIGHT_SHARE = 0.4  # light load: each workload asks for this share of what it serves flat out alone
# The paper's published figures (light: every application kept its rate, so 4x the samples in
# the same time; heavy: 1% to 25% more samples per application, throughput ratios summing to 1.13).
PAPER = {
    "light": {"normalised_total": 4.0, "throughput_ratio_sum": 4.0, "per_workload": (1.0, 1.0)},
    "heavy": {"normalised_total": 1.13, "throughput_ratio_sum": 1.13, "per_workload": (1.01, 1.25)},
}


def poisson_arrivals(rate_per_s: float, duration_s: float, seed: int) -> list[float]:
    """Arrival times in [0, duration_s) of a Poisson process of ``rate_per_s`` (seeded)."""
    if rate_per_s <= 0:
        raise ValueError(f"an arrival rate must be positive, got {rate_per_s}")
    draw = random.Random(seed)
    times, now = [], draw.expovariate(rate_per_s)
    while now < duration_s:
        times.append(now)
        now += draw.expovariate(rate_per_s)
    return times


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass
class Window:
    """What one workload did in one measured window."""

    workload: str
    seconds: float
    requests: int = 0
    samples: int = 0
    latencies_s: list[float] = field(default_factory=list)  # each request, arrival to done
    target_rate: float = 0.0  # requests/s asked (light load); 0 flat out
    dropped: int = 0  # light load: arrivals not sent, a second's worth already waiting
    util_pct: float = math.nan  # the device's mean utilisation over the window
    memory_mib: int = 0  # the device's most memory in use over the window

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("latencies_s")
        data.update(
            samples_per_s=self.samples_per_s,
            requests_per_s=self.requests_per_s,
            latency_p50_ms=1000 * percentile(self.latencies_s, 0.50),
            latency_p99_ms=1000 * percentile(self.latencies_s, 0.99),
        )
        return {key: (None if isinstance(value, float) and math.isnan(value) else value) for key, value in data.items()}


def compare(sequential: Sequence[Window], concurrent: Sequence[Window]) -> dict:
    """Sharing against one-after-another, per workload and in total (the paper's Figures 4/5):
    each workload's concurrent/sequential throughput, its samples in the concurrent window over
    its samples in its own slot, and the same for all samples."""
    by_name = {w.workload: w for w in sequential}
    rows = {}
    for shared in concurrent:
        alone = by_name[shared.workload]
        rows[shared.workload] = {
            "throughput_ratio": shared.samples_per_s / alone.samples_per_s if alone.samples_per_s else math.nan,
            "normalised_samples": shared.samples / alone.samples if alone.samples else math.nan,
            "p99_ratio": _ratio(percentile(shared.latencies_s, 0.99), percentile(alone.latencies_s, 0.99)),
        }
    total_alone = sum(w.samples for w in sequential)
    return {
        "per_workload": rows,
        "throughput_ratio_sum": sum(r["throughput_ratio"] for r in rows.values()),
        "normalised_total": sum(w.samples for w in concurrent) / total_alone if total_alone else math.nan,
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan
