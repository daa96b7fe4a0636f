"""The lines of one GPU's panel, as runs of (text, style): its flags, a memory bar split into
the partitions granted on it, what is used, utilisation with its history, temperature and
power, each partition, and memory held outside any lease (pure: no Textual)."""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol.v1 import bitshare_pb2 as pb
from ..units import format_mib

SPARK = "▁▂▃▄▅▆▇█"
SIMULATED = "SIMULATED (CPU-backed)"  # said loudly, wherever a simulated GPU is shown
BAR = 48
SEGMENT_STYLES = ("bold cyan", "bold magenta", "bold green", "bold yellow", "bold blue", "bold red")

Line = list[tuple[str, str]]  # runs of (text, Rich style)


def gpu_lines(gpu: pb.Gpu, leases: dict[str, pb.Lease], history: Iterable[float]) -> list[Line]:
    flags = [
        (SIMULATED, "bold yellow") if gpu.simulated else None,
        ("DRAINED", "bold red") if gpu.drained else None,
        ("MPS", "bold green") if gpu.mps else None,
    ]
    head: Line = [(f"[{name}] ", style) for name, style in filter(None, flags)]
    head.append((f"{format_mib(gpu.total_mib)} total, {format_mib(gpu.capacity_mib)} lendable", ""))
    util = f"util {sparkline(history, 30)} {gpu.utilization_pct:3d}%"
    if gpu.temperature_c:
        util += f"  {gpu.temperature_c}°C"
    if gpu.power_w:
        util += f"  {gpu.power_w:.0f} W"
    lines = [
        head,
        [("[", ""), *memory_bar(gpu), ("]", "")],
        [
            (f"granted {format_mib(gpu.granted_mib)}  free {format_mib(gpu.free_mib)}  ", ""),
            (f"used {format_mib(gpu.used_mib)}", "bold"),
            (f"  ({format_mib(gpu.reserved_mib)} reserved)", ""),
        ],
        [(util, "")],
    ]
    for number, part in enumerate(gpu.partitions):
        lease = leases.get(part.lease_id)
        line: Line = [
            ("  ■ ", SEGMENT_STYLES[number % len(SEGMENT_STYLES)]),
            (f"{part.lease_id or '(hidden)'}  {part.owner}  {format_mib(part.memory_mib)}", ""),
        ]
        if lease is not None and lease.usage.HasField("sampled_at"):
            line.append((f"  used {format_mib(lease.usage.used_mib)}  SM {lease.usage.sm_pct}%", ""))
        if lease is not None and lease.enforcement:
            line.append((f"  [{lease.enforcement}]", "dim"))
        lines.append(line)
    for proc in gpu.unleased:
        text = f"  ! pid {proc.pid} {proc.name} ({proc.user}) {format_mib(proc.used_mib)}: NOT UNDER A LEASE"
        lines.append([(text, "bold red")])
    return lines


def memory_bar(gpu: pb.Gpu) -> Line:
    """BAR cells: one run per partition (at least a cell each), then free, then reserved."""
    total = max(gpu.total_mib, 1)
    bar: Line = []
    for number, part in enumerate(gpu.partitions):
        cells = max(1, round(BAR * part.memory_mib / total))
        bar.append(("█" * cells, SEGMENT_STYLES[number % len(SEGMENT_STYLES)]))
    granted = sum(len(text) for text, _ in bar)
    reserved = round(BAR * gpu.reserved_mib / total)
    bar.append(("░" * max(0, BAR - granted - reserved), "dim"))
    bar.append(("r" * reserved, "dim italic"))
    return bar


def sparkline(values: Iterable[float], width: int) -> str:
    """The last ``width`` values (0..100) as block characters."""
    points = list(values)[-width:]
    return "".join(SPARK[min(len(SPARK) - 1, int(v * len(SPARK) / 101))] for v in points).rjust(width, " ")
