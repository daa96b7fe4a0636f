"""Small text helpers for the console's cells and panels (pure: no Textual)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from ..protocol.v1 import bitshare_pb2 as pb
from ..units import format_mib

SPARK = "▁▂▃▄▅▆▇█"


def state(lease: pb.Lease) -> str:
    return pb.LeaseState.Name(lease.state).removeprefix("LEASE_STATE_").lower()


def since(stamp: object, now: float | None = None) -> str:
    """How long ago a Timestamp was, as 5s / 12m / 3.1h ("-" when unset)."""
    if not stamp.seconds and not stamp.nanos:  # type: ignore[attr-defined]
        return "-"
    seconds = max(0.0, (now or time.time()) - stamp.ToNanoseconds() / 1e9)  # type: ignore[attr-defined]
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def partition(lease: pb.Lease) -> str:
    sizes = sorted({a.memory_mib for a in lease.allocations})
    if sizes:
        return " / ".join(format_mib(s) for s in sizes)
    spec = lease.spec
    return f"p={spec.fraction:g}" if spec.WhichOneof("size") == "fraction" else format_mib(spec.memory_mib)


def gpus(lease: pb.Lease) -> str:
    return ",".join(str(a.gpu_index) for a in lease.allocations) or f"{lease.spec.gpu_count}×"


def used(lease: pb.Lease) -> str:
    return format_mib(lease.usage.used_mib) if lease.usage.HasField("sampled_at") else "-"


def sparkline(values: Iterable[float], width: int) -> str:
    """The last ``width`` values (0..100) as block characters."""
    points = list(values)[-width:]
    return "".join(SPARK[min(len(SPARK) - 1, int(v * len(SPARK) / 101))] for v in points).rjust(width, " ")


def matches(text: str, query: str) -> bool:
    return not query or query.lower() in text.lower()
