"""``bitshare-admin``: GPUs, leases and the queue of one or several daemons, live; and the actions
an admin takes on them (resize, revoke, drain, priority). The app takes its data sources as
arguments (:mod:`bitshare.tui.data`): real daemons, or recorded snapshots in tests."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, ClassVar

from textual.actions import parse as parse_action
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Input, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from ..errors import BitshareError
from ..present.ages import since
from ..present.leases import command_line, gpus, measured, partition, state_name, used
from ..present.printable import make_printable, printable
from ..protocol.v1 import bitshare_pb2 as pb
from .access import access_line, may, waiting_line
from .answers import check_priority, check_reason, parse_size
from .commands import PALETTE
from .data import Source
from .messages import SnapshotReceived, SourceLost
from .modals.ask import AskModal
from .screens.lease_detail import LeaseDetailScreen
from .widgets.footer import KeysFooter
from .widgets.gpu_panel import HISTORY, GpuPanel
from .widgets.live_table import LiveTable

LEASE_COLUMNS = (
    "SERVER",
    "LEASE",
    "OWNER",
    "HOST",
    "COMMAND",
    "GPUS",
    "PARTITION",
    "USED",
    "SM%",
    "AGE",
    "IDLE",
    "STATE",
    "TIER",
)
QUEUE_COLUMNS = ("SERVER", "POS", "LEASE", "OWNER", "ASKED", "GPUS", "PRIO", "WAITED")
BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
AGE_STEP_S = 5.0


class DaemonView:
    """What the console knows of one daemon: its last snapshot, and whether that is stale."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.snapshot: pb.TelemetrySnapshot | None = None
        self.history: dict[int, deque[float]] = {}  # per GPU: utilisation, one point per snapshot
        self.stale = ""  # why it is stale ("" when live)
        self.role = "unknown"  # the caller's role there ("admin" or "client"), as its last snapshot says
        self.caller = ""


class AdminApp(App[None]):
    CSS_PATH = "admin.tcss"
    TITLE = "bitshare-admin"
    AUTO_FOCUS = "#gpu-list"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "show_tab('gpus')", "GPUs", id="view.gpus"),
        Binding("l", "show_tab('leases')", "Leases", id="view.leases"),
        Binding("w", "show_tab('queue')", "Queue", id="view.queue"),
        Binding("enter", "details", "Details", id="lease.details", show=False),
        Binding("r", "resize", "Resize", id="lease.resize"),
        Binding("x", "revoke", "Revoke", id="lease.revoke"),
        Binding("p", "priority", "Priority", id="queue.priority"),
        Binding("d", "drain(True)", "Drain", id="gpu.drain"),
        Binding("u", "drain(False)", "Undrain", id="gpu.undrain"),
        Binding("slash", "filter", "Filter", id="table.filter"),
        Binding("escape", "close_filter", "Close filter", id="table.close_filter", show=False),
        Binding("s", "sort", "Sort", id="table.sort"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        sources: Sequence[Source],
        readonly: bool = False,
        min_interval_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.views = {source.name: DaemonView(source) for source in sources}
        self.readonly = readonly
        self.min_interval_s = min_interval_s
        self.clock = clock  # ages are shown against it (a fixed one in snapshot tests)
        self.panels: dict[tuple[str, int], GpuPanel] = {}
        self._refresh_pending = False

    # ----- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="access", markup=False)  # daemons' errors are shown as they are
        with TabbedContent(initial="gpus"):
            with TabPane("GPUs", id="gpus"):
                yield VerticalScroll(id="gpu-list")
            with TabPane("Leases", id="leases"):
                yield LiveTable(LEASE_COLUMNS, id="lease-table")
            with TabPane("Queue", id="queue"):
                yield LiveTable(QUEUE_COLUMNS, id="queue-table")
        yield Input(placeholder="filter rows (Enter to apply, Esc to close)", id="filter")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.sub_title = ", ".join(self.views)
        self._show_access()
        for view in self.views.values():
            self.run_worker(lambda view=view: self._follow(view), thread=True, group="telemetry", exit_on_error=False)

    def on_unmount(self) -> None:
        for view in self.views.values():
            view.source.stop()

    # ----- telemetry (worker threads) ------------------------------------------------------------

    def _follow(self, view: DaemonView) -> None:
        """Stream one daemon's snapshots; when it goes away, say so and reconnect with backoff."""
        worker = get_current_worker()
        failures = 0
        while not worker.is_cancelled:
            try:
                for snapshot in view.source.snapshots(self.min_interval_s):
                    failures = 0
                    # Made printable here, in the worker: nothing a client wrote reaches the terminal.
                    self.post_message(SnapshotReceived(view.source.name, make_printable(snapshot)))
                    if worker.is_cancelled:
                        return
            except BitshareError as exc:
                self.post_message(SourceLost(view.source.name, printable(str(exc))))
            failures += 1
            deadline = time.monotonic() + BACKOFF_S[min(failures, len(BACKOFF_S)) - 1]
            while time.monotonic() < deadline and not worker.is_cancelled:
                time.sleep(0.05)

    def on_snapshot_received(self, message: SnapshotReceived) -> None:
        view = self.views[message.server]
        first = view.snapshot is None
        view.snapshot, view.stale = message.snapshot, ""
        server = message.snapshot.server
        role = "admin" if server.caller_role == pb.ROLE_ADMIN else "client"
        if first or (role, server.caller) != (view.role, view.caller):
            view.role, view.caller = role, server.caller
            self._show_access()
            self.refresh_bindings()  # the footer offers what may now be done
        for gpu in message.snapshot.gpus:
            view.history.setdefault(gpu.index, deque(maxlen=HISTORY)).append(gpu.utilization_pct)
        self._schedule_refresh()

    def on_source_lost(self, message: SourceLost) -> None:
        view = self.views[message.server]
        if view.snapshot is None:  # nothing to show: the standing line says why, until there is
            if message.error != view.stale:
                view.stale = message.error
                self._show_access()
            return
        if not view.stale:
            self.notify(f"{message.server}: {message.error}; showing its last data", severity="warning", markup=False)
        view.stale = message.error
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        """Snapshots that arrive while the screen is busy are folded into one refresh."""
        if not self._refresh_pending:
            self._refresh_pending = True
            self.call_later(self._run_refresh)

    def _run_refresh(self) -> None:
        self._refresh_pending = False
        self.refresh_views()

    # ----- views --------------------------------------------------------------------------------

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_views()  # a view that was hidden catches up now
        self._name_selection()

    def refresh_views(self) -> None:
        """Bring the views up to date; only the view on screen is redrawn (the others keep their rows)."""
        active = self._tab()
        # Ages move in steps of AGE_STEP_S: every cell of an age column changing every second
        # would redraw the whole table every second.
        now = self.clock()
        now -= now % AGE_STEP_S
        gpu_list = self.query_one("#gpu-list", VerticalScroll)
        leases: dict[str, tuple[str, ...]] = {}
        queue: dict[str, tuple[str, ...]] = {}
        for server, view in self.views.items():
            snapshot = view.snapshot
            if snapshot is None:
                continue
            by_id = {lease.id: lease for lease in snapshot.leases}
            for gpu in snapshot.gpus:
                panel = self.panels.get((server, gpu.index))
                if panel is None:
                    panel = self.panels[(server, gpu.index)] = GpuPanel(server, gpu.index)
                    panel.can_focus = True
                    gpu_list.mount(panel)
                panel.gpu = gpu
                if active == "gpus":
                    history = view.history.get(gpu.index, ())
                    panel.show(gpu, snapshot.server.hostname, by_id, bool(view.stale), history)
            stale = " (stale)" if view.stale else ""
            for lease in snapshot.leases:
                key = f"{server}|{lease.id}"
                if lease.state == pb.LEASE_STATE_QUEUED:
                    queue[key] = (
                        server + stale,
                        str(lease.queue_position),
                        lease.id,
                        lease.owner,
                        partition(lease),
                        str(lease.spec.gpu_count),
                        str(lease.priority),
                        since(lease.created_at, now),
                    )
                else:
                    leases[key] = (
                        server + stale,
                        lease.id,
                        lease.owner,
                        lease.client_host,
                        command_line(lease),
                        gpus(lease),
                        partition(lease),
                        used(lease),
                        str(lease.usage.sm_pct) if measured(lease) else "-",
                        since(lease.granted_at, now),
                        since(lease.last_active_at, now),
                        state_name(lease.state),
                        lease.enforcement or "-",
                    )
        self.query_one("#lease-table", LiveTable).sync(leases, show=active == "leases")
        self.query_one("#queue-table", LiveTable).sync(queue, show=active == "queue")

    # ----- what is selected -----------------------------------------------------------------------

    def _selected_lease(self, table_id: str) -> tuple[DaemonView, pb.Lease] | None:
        key = self.query_one(table_id, LiveTable).selected_key
        if key is None:
            return None
        server, _, lease_id = key.partition("|")
        view = self.views[server]
        for lease in view.snapshot.leases if view.snapshot else ():
            if lease.id == lease_id:
                return view, lease
        return None

    def _may_act(self, view: DaemonView) -> bool:
        """Whether an admin action may be taken on ``view``'s daemon (one of several, where the
        caller is an admin on some: on none, the action is not offered at all)."""
        if view.role != "admin":
            self.notify(f"{view.source.name}: watching as a client there, admin actions are unavailable")
            return False
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Actions that may not be taken are not offered: no key in the footer, no command."""
        return may(action, self.readonly, {server: view.role for server, view in self.views.items()})

    def _show_access(self) -> None:
        """Say, for as long as it holds, what this console can show and do, and which daemons it
        has no data from (and why)."""
        clients = {server: view.caller for server, view in self.views.items() if view.role == "client"}
        admin_elsewhere = any(view.role == "admin" for view in self.views.values())
        lines = [access_line(self.readonly, clients, admin_elsewhere)]
        lines += [waiting_line(server, v.stale) for server, v in self.views.items() if v.snapshot is None and v.stale]
        text = "\n".join(line for line in lines if line)
        banner = self.query_one("#access", Static)
        banner.update(text)
        banner.display = bool(text)

    def _commands(self) -> Iterable[tuple[str, str, str, str]]:
        """(name, what it does, key, action) of each console command that may be run now."""
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.id in PALETTE:
                _, action, parameters = parse_action(binding.action)
                if self.check_action(action, parameters):
                    yield (*PALETTE[binding.id], self.get_key_display(binding), binding.action)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if screen is not self.screen_stack[0]:
            return  # the console's commands act on its main screen
        for name, what, key, action in self._commands():
            yield SystemCommand(name, f"{what} ({key})", partial(self.run_action, action))

    def _tab(self) -> str:
        return self.query_one(TabbedContent).active

    # ----- actions -------------------------------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = {"gpus": "#gpu-list", "leases": "#lease-table", "queue": "#queue-table"}[tab]
        # Focus now, not after the next refresh (as Widget.focus does): keys typed right after
        # the switch (l then Down) must reach the new view, not the one it replaced.
        self.screen.set_focus(self.query_one(target))

    def action_details(self) -> None:
        if self._tab() != "leases":
            return
        selected = self._selected_lease("#lease-table")
        if selected is not None:
            view, lease = selected
            self.push_screen(LeaseDetailScreen(view.source, lease, self.clock(), events=view.role == "admin"))

    def on_live_table_row_highlighted(self, event: LiveTable.RowHighlighted) -> None:
        self._name_selection()

    def _name_selection(self) -> None:
        """The header names the lease under the cursor of the table on show: what r, x and Enter act on."""
        table_id = {"leases": "#lease-table", "queue": "#queue-table"}.get(self._tab())
        key = self.query_one(table_id, LiveTable).selected_key if table_id else None
        server, _, lease_id = (key or "").partition("|")
        self.sub_title = f"{lease_id} on {server}" if lease_id else ", ".join(self.views)

    def on_live_table_row_selected(self, event: LiveTable.RowSelected) -> None:
        """Enter (or a click) on a lease opens its details."""
        if event.table.id == "lease-table":
            self.action_details()

    def _target(self, tab: str) -> tuple[DaemonView, pb.Lease] | None:
        """The lease an action aims at (by its id, under the cursor of ``tab``), if it may be acted on."""
        selected = self._selected_lease(f"#{tab.rstrip('s')}-table") if self._tab() == tab else None
        if selected is None:
            self.notify(f"select a {'lease' if tab == 'leases' else 'queued request'} on the {tab.title()} view first")
            return None
        return selected if self._may_act(selected[0]) else None

    def action_resize(self) -> None:
        target = self._target("leases")
        if target is None:
            return
        view, lease = target
        capacity = min((g.capacity_mib for g in view.snapshot.gpus if g.index in _indices(lease)), default=0)
        question = (
            f"New size for lease {lease.id} (now {partition(lease)}): "
            "a fraction like 0.25 (1 is the whole GPU), or a size like 8GiB"
        )
        self._ask_then_act(
            view,
            AskModal(question, lambda text: parse_size(text, capacity), "0.25 or 8GiB", "Resize"),
            lambda size: view.source.resize(lease.id, *size),
            lambda _: f"lease {lease.id} resized",
        )

    def action_revoke(self) -> None:
        target = self._target("leases")
        if target is None:
            return
        view, lease = target
        question = f"Revoke lease {lease.id} of {lease.owner}? Its processes are ended. Reason:"
        self._ask_then_act(
            view,
            AskModal(question, check_reason, "maintenance", "Revoke"),
            lambda reason: view.source.revoke(lease.id, reason),
            lambda _: f"lease {lease.id} revoked",
        )

    def action_priority(self) -> None:
        target = self._target("queue")
        if target is None:
            return
        view, lease = target
        self._ask_then_act(
            view,
            AskModal(f"Priority of {lease.id} (now {lease.priority}):", check_priority, "10"),
            lambda priority: view.source.set_priority(lease.id, priority),
            lambda priority: f"{lease.id}: priority {priority}",
        )

    def action_drain(self, drained: bool) -> None:
        panel = self.focused if isinstance(self.focused, GpuPanel) else None
        if panel is None or self._tab() != "gpus":
            self.notify("focus a GPU on the GPUs view first (Tab)")
            return
        view = self.views[panel.server]
        if not self._may_act(view):
            return
        what = "drained" if drained else "undrained"
        self._act(view, lambda: view.source.drain(panel.index, drained), f"GPU {panel.index} on {panel.server} {what}")

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    def action_close_filter(self) -> None:
        field = self.query_one("#filter", Input)
        if field.display:
            field.display = False
            self.action_show_tab(self._tab())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            for table in self.query(LiveTable):
                table.set_query(event.value)
            event.input.display = False
            self.action_show_tab(self._tab())

    def action_sort(self) -> None:
        table_id = {"leases": "#lease-table", "queue": "#queue-table"}.get(self._tab())
        if table_id is not None:
            column = self.query_one(table_id, LiveTable).next_sort()
            self.notify(f"sorted by {column}")

    def action_help(self) -> None:
        keys = [f"{key}: {name}" for name, _, key, _ in self._commands()]
        self.notify(" · ".join([*keys, "ctrl+p: commands", "ctrl+q: quit"]), title="bitshare-admin", timeout=10)

    def _ask_then_act(
        self, view: DaemonView, ask: AskModal, act: Callable[[Any], object], said: Callable[[Any], str]
    ) -> None:
        """Ask for a value; once given (not cancelled), ``act`` on it and say ``said(value)``."""

        def answered(value: Any) -> None:
            if value is not None:
                self._act(view, lambda: act(value), said(value))

        self.push_screen(ask, answered)

    def _act(self, view: DaemonView, call: Callable[[], Any], done: str) -> None:
        """Run an admin call in a worker; say how it went."""

        def work() -> None:
            try:
                call()
            except BitshareError as exc:
                error = printable(str(exc))
                self.call_from_thread(self.notify, f"{view.source.name}: {error}", severity="error", markup=False)
                return
            self.call_from_thread(self.notify, done)

        self.run_worker(work, thread=True, group="actions")


def _indices(lease: pb.Lease) -> set[int]:
    return {a.gpu_index for a in lease.allocations}
