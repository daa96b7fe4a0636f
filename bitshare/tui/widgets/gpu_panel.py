"""One GPU: its memory split into the partitions granted on it, what is really used, utilisation
with its recent history, temperature and power, and whether it is drained, simulated or under MPS."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import Static

from ...units import format_mib
from ...v1 import bitshare_pb2 as pb
from ..format import sparkline

BAR = 48
HISTORY = 120
SEGMENT_STYLES = ("bold cyan", "bold magenta", "bold green", "bold yellow", "bold blue", "bold red")


class GpuPanel(Static):
    """Updated in place as snapshots arrive; ``stale`` greys it out while its daemon is away."""

    DEFAULT_CSS = """
    GpuPanel { border: round $primary; padding: 0 1; height: auto; margin-bottom: 1; }
    GpuPanel.stale { border: round $warning; color: $text-muted; }
    """

    def __init__(self, server: str, index: int) -> None:
        super().__init__(id=None)
        self.server = server
        self.index = index
        self.history: list[float] = []  # utilisation, one point per snapshot (kept by the app)
        self.gpu: pb.Gpu | None = None
        self.hostname = ""
        self._shown: tuple = ()  # what the panel shows now

    def show(
        self, gpu: pb.Gpu, hostname: str, leases: dict[str, pb.Lease], stale: bool, history: Iterable[float]
    ) -> None:
        self.history = list(history)
        usage = tuple((p.lease_id, _usage(leases.get(p.lease_id))) for p in gpu.partitions)
        shown = (gpu.SerializeToString(), usage, hostname, stale, tuple(self.history))
        if shown == self._shown:
            return  # nothing on this panel changed: no new text, no redraw
        self._shown = shown
        self.gpu, self.hostname = gpu, hostname
        self.border_title = f"GPU {gpu.index} · {gpu.name}"
        self.border_subtitle = f"{hostname} · {self.server}" + (" · STALE" if stale else "")
        self.set_class(stale, "stale")
        self.update(self.render_text(gpu, leases))

    def render_text(self, gpu: pb.Gpu, leases: dict[str, pb.Lease]) -> Text:
        text = Text()
        flags = [
            ("SIMULATED (CPU-backed)", "bold yellow") if gpu.simulated else None,
            ("DRAINED", "bold red") if gpu.drained else None,
            ("MPS", "bold green") if gpu.mps else None,
        ]
        for flag in filter(None, flags):
            text.append(f"[{flag[0]}] ", style=flag[1])
        text.append(f"{format_mib(gpu.total_mib)} total, {format_mib(gpu.capacity_mib)} lendable\n")
        text.append("[")
        text.append_text(self._bar(gpu))
        text.append("]\n")
        text.append(f"granted {format_mib(gpu.granted_mib)}  free {format_mib(gpu.free_mib)}  ")
        text.append(f"used {format_mib(gpu.used_mib)}", style="bold")
        text.append(f"  ({format_mib(gpu.reserved_mib)} reserved)\n")
        text.append(f"util {sparkline(self.history, 30)} {gpu.utilization_pct:3d}%")
        if gpu.temperature_c:
            text.append(f"  {gpu.temperature_c}°C")
        if gpu.power_w:
            text.append(f"  {gpu.power_w:.0f} W")
        for number, part in enumerate(gpu.partitions):
            lease = leases.get(part.lease_id)
            style = SEGMENT_STYLES[number % len(SEGMENT_STYLES)]
            text.append("\n  ■ ", style=style)
            text.append(f"{part.lease_id or '(hidden)'}  {part.owner}  {format_mib(part.memory_mib)}")
            if lease is not None and lease.usage.HasField("sampled_at"):
                text.append(f"  used {format_mib(lease.usage.used_mib)}  SM {lease.usage.sm_pct}%")
            if lease is not None and lease.enforcement:
                text.append(f"  [{lease.enforcement}]", style="dim")
        for proc in gpu.unleased:
            text.append(
                f"\n  ! pid {proc.pid} {proc.name} ({proc.user}) {format_mib(proc.used_mib)}: NOT UNDER A LEASE",
                style="bold red",
            )
        return text

    def _bar(self, gpu: pb.Gpu) -> Text:
        bar = Text()
        total = max(gpu.total_mib, 1)
        for number, part in enumerate(gpu.partitions):
            cells = max(1, round(BAR * part.memory_mib / total))
            bar.append("█" * cells, style=SEGMENT_STYLES[number % len(SEGMENT_STYLES)])
        granted_cells = len(bar.plain)
        reserved = round(BAR * gpu.reserved_mib / total)
        free = max(0, BAR - granted_cells - reserved)
        bar.append("░" * free, style="dim")
        bar.append("r" * reserved, style="dim italic")
        return bar


def _usage(lease: pb.Lease | None) -> tuple[int, int, str]:
    if lease is None:
        return (0, 0, "")
    return (lease.usage.used_mib, lease.usage.sm_pct, lease.enforcement)
