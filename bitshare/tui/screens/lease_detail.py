"""One lease: its fields, its processes as last measured, and its events (fetched in a worker)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ...present.ages import since
from ...present.leases import gpus, measured, partition, state_name, used
from ...present.printable import make_printable, printable
from ...protocol.v1 import bitshare_pb2 as pb
from ...units import format_mib
from ..data import Source


class LeaseDetailScreen(Screen[None]):
    AUTO_FOCUS = "VerticalScroll"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back", id="detail.back")]

    def __init__(self, source: Source, lease: pb.Lease, now: float, events: bool = True) -> None:
        """``events``: whether the caller may read the daemon's event log (an admin may)."""
        super().__init__()
        self.source = source
        self.lease = lease
        self.now = now
        self.events = events

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static(self._summary(), id="summary")
            yield Static("events: loading…" if self.events else "events: only an admin may read them", id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"lease {self.lease.id} on {self.source.name}"
        if self.events:
            self.run_worker(self._load_events, thread=True, group="detail")

    def _load_events(self) -> None:
        try:
            events = [make_printable(event) for event in self.source.events(self.lease.id)]
        except Exception as exc:  # any failure is shown in place of the events
            failure = Text(f"events: cannot load ({printable(str(exc))})")
            self.app.call_from_thread(self.query_one("#events", Static).update, failure)
            return
        text = Text("events (newest first):\n", style="bold")
        for event in events:
            by = f"  by {event.actor}" if event.actor else ""
            text.append(f"  {since(event.at, self.now)} ago  {event.kind:<12} {event.detail}{by}\n")
        self.app.call_from_thread(self.query_one("#events", Static).update, text)

    def _summary(self) -> Text:
        lease = self.lease
        text = Text()
        rows = [
            ("owner", lease.owner),
            ("state", state_name(lease.state) + (f" ({lease.end_reason})" if lease.end_reason else "")),
            ("client host", lease.client_host or "-"),
            ("command", lease.command or "-"),
            ("GPUs", gpus(lease)),
            ("partition", partition(lease)),
            ("used", used(lease)),
            ("SM", f"{lease.usage.sm_pct}%" if measured(lease) else "-"),
            ("protected by", lease.enforcement or "-"),
            ("age", since(lease.created_at, self.now)),
            ("idle", since(lease.last_active_at, self.now)),
        ]
        for name, value in rows:
            text.append(f"{name:>13}  ", style="bold")
            text.append(f"{value}\n")
        text.append("\nprocesses:\n", style="bold")
        for proc in lease.usage.processes:
            text.append(f"  pid {proc.pid:<8} {proc.name:<16} {proc.user:<10} GPU {proc.gpu_index}  ")
            text.append(f"{format_mib(proc.used_mib)}  SM {proc.sm_pct}%\n")
        if not lease.usage.processes:
            text.append("  none measured\n", style="dim")
        return text
