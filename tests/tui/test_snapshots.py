"""Each view of bitshare-admin at 80x24 and 160x48, from recorded data (the SVGs under
__snapshots__ are the accepted pictures; `pytest --snapshot-update` records new ones)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bitshare.tui.app import AdminApp
from bitshare.tui.widgets.live_table import LiveTable

from .recorded import NOW, client_sources, sources

SIZES = [(80, 24), (160, 48)]


async def loaded(pilot: Any, rows: int = 4) -> None:
    """Wait (with a deadline) until every recorded snapshot is shown (``rows`` leases)."""
    app = pilot.app
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        views = app.views.values()
        shown = all(v.snapshot is not None and v.snapshot.version == v.source.recorded[-1].version for v in views)
        if shown and len(app.query_one("#lease-table", LiveTable).keys) == rows:
            await pilot.pause(0.2)
            return
        await pilot.pause(0.05)
    raise AssertionError("the recorded snapshots were not shown within 15s")


def console() -> AdminApp:
    return AdminApp(sources(), clock=lambda: NOW)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    ("view", "keys"),
    [("gpus", []), ("leases", ["l"]), ("queue", ["w"]), ("lease-detail", ["l", "enter", "_"])],
)
def test_view(snap_compare: Any, view: str, keys: list[str], size: tuple[int, int]) -> None:
    assert snap_compare(console(), press=keys, terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_client_console(snap_compare: Any, size: tuple[int, int]) -> None:
    """A client token: the line saying what it can see and do, its own lease, no action keys."""
    app = AdminApp(client_sources(), clock=lambda: NOW)
    assert snap_compare(app, press=["l"], terminal_size=size, run_before=lambda pilot: loaded(pilot, rows=1))
