"""One GPU's panel (see :mod:`bitshare.present.gpu_lines` for what it shows), drawn line by line.

Each line is one strip built straight from its runs, and the panel's height is its line count:
the layout never renders a panel to measure it, and an unchanged panel is never redrawn. (As a
Static of Rich text, eight panels of 25 partitions made a switch to this view take ~50 ms.)
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from ...present.gpu_lines import Line, gpu_lines
from ...protocol.v1 import bitshare_pb2 as pb

HISTORY = 120


class GpuPanel(Widget):
    """Updated in place as snapshots arrive; ``stale`` greys it out while its daemon is away."""

    DEFAULT_CSS = """
    GpuPanel { border: round $primary; padding: 0 1; width: 1fr; height: 3; margin-bottom: 1; }
    GpuPanel:focus { border: heavy $accent; }
    GpuPanel.stale { border: round $warning; color: $text-muted; }
    """

    def __init__(self, server: str, index: int) -> None:
        super().__init__()
        self.server = server
        self.index = index
        self.gpu: pb.Gpu | None = None
        self.hostname = ""
        self.lines: list[Line] = []
        self._shown: tuple = ()  # what the panel shows now

    @property
    def plain(self) -> str:
        """The panel's text, without styles."""
        return "\n".join("".join(text for text, _ in line) for line in self.lines)

    def show(
        self, gpu: pb.Gpu, hostname: str, leases: dict[str, pb.Lease], stale: bool, history: Iterable[float]
    ) -> None:
        history = tuple(history)
        usage = tuple((p.lease_id, _usage(leases.get(p.lease_id))) for p in gpu.partitions)
        shown = (gpu.SerializeToString(), usage, hostname, stale, history)
        if shown == self._shown:
            return  # nothing on this panel changed: no new lines, no redraw
        self._shown = shown
        self.gpu, self.hostname = gpu, hostname
        self.border_title = f"GPU {gpu.index} · {gpu.name}"
        self.border_subtitle = f"{hostname} · {self.server}" + (" · STALE" if stale else "")
        self.set_class(stale, "stale")
        self.lines = gpu_lines(gpu, leases, history)
        height = len(self.lines) + 2  # and the border
        if self.styles.height is None or self.styles.height.value != height:
            self.styles.height = height
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, base = self.size.width, self.rich_style  # the content area's width
        if y >= len(self.lines):
            return Strip.blank(width, base)
        segments = [Segment(text, base + Style.parse(style) if style else base) for text, style in self.lines[y]]
        return Strip(segments).crop(0, width).extend_cell_length(width, base)


def _usage(lease: pb.Lease | None) -> tuple[int, int, str]:
    if lease is None:
        return (0, 0, "")
    return (lease.usage.used_mib, lease.usage.sm_pct, lease.enforcement)
