"""bitshare-admin driven by Textual's Pilot against a real daemon on simulated GPUs."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.command import CommandList
from textual.widgets._footer import FooterKey

from bitshare.client.connection import LeaseRequest, connect
from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.tui.answers import parse_size
from bitshare.tui.app import AdminApp
from bitshare.tui.data import DaemonSource
from bitshare.tui.widgets.gpu_panel import GpuPanel
from bitshare.tui.widgets.live_table import LiveTable

from ..support.harness import Daemon, free_port, make_token

SIZE = (140, 40)


async def until(pilot: Any, predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await pilot.pause(0.05)


def drive(app: AdminApp, scenario: Callable[[Any], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await scenario(pilot)

    asyncio.run(main())


def table(app: AdminApp, name: str) -> LiveTable:
    return app.query_one(f"#{name}-table", LiveTable)


def keys_of(app: AdminApp, name: str) -> set[str]:
    return {key.partition("|")[2] for key in table(app, name).keys}


def notes(app: AdminApp) -> list[str]:
    return [n.message for n in app._notifications]


ACTION_KEYS = {"r", "x", "p", "d", "u"}  # resize, revoke, priority, drain, undrain


def footer_keys(app: AdminApp) -> set[str]:
    return {key.key for key in app.screen.query(FooterKey)}


async def palette(pilot: Any, query: str) -> list[str]:
    """Open the command palette, type ``query``, and return the commands it offers (once it has
    offered some, or said it has none); the palette is closed again."""
    app = pilot.app
    await pilot.press("ctrl+p", *query)

    def offered() -> list[str] | None:
        found = app.screen.query_one(CommandList)
        options = [found.get_option_at_index(i) for i in range(found.option_count)]
        if any(option.id == "--no-matches" for option in options):
            return []
        return [str(option.prompt).splitlines()[0] for option in options] or None

    commands = await until(pilot, lambda: offered() is not None, f"the palette's answer to {query!r}")
    commands = offered()
    await pilot.press("escape")
    return commands


def offers_actions(app: AdminApp) -> set[str]:
    """The admin actions among the commands the palette would offer now."""
    actions = {"Resize lease", "Revoke lease", "Priority of queued request", "Drain GPU", "Undrain GPU"}
    return actions & {command.title for command in app.get_system_commands(app.screen)}


def test_the_command_palette_offers_the_console_actions_by_name(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(fraction=0.25))
    app = AdminApp([DaemonSource(daemon.server)])

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: keys_of(app, "lease") == {lease.id}, "the lease shown")
        for query, command in (("revoke", "Revoke lease"), ("resize", "Resize lease"), ("drain", "Drain GPU")):
            assert command in await palette(pilot, query)
        assert "Queue view" in await palette(pilot, "queue")
        assert len(offers_actions(app)) == 5
        await pilot.press("l", "ctrl+p", *"revoke")
        await until(pilot, lambda: app.screen.query_one(CommandList).option_count, "the revoke command offered")
        await pilot.press("enter")
        await until(pilot, lambda: "Revoke lease" in str(app.screen.query_one("Label").render()), "the revoke question")
        await pilot.press(*"palette", "enter")
        await until(pilot, lambda: lease.id not in keys_of(app, "lease"), "the lease revoked")

    drive(app, scenario)
    with daemon.client() as client:
        assert client.get(lease.id).end_reason == "palette"


def tcp_daemon_with_a_client(make_daemon: Any, tmp_path: Any) -> tuple[Daemon, str, str]:
    """A daemon on its Unix socket (where this test is an admin) and on loopback TCP, and a
    client token for it: (the daemon, its TCP address, the token of ``token:alice``)."""
    tokens, port = tmp_path / "tokens.toml", free_port()
    alice = make_token(tokens, "alice", "client")
    daemon = make_daemon(
        "--simulate", "1x16GiB", "--listen", f"unix:{tmp_path}/d.sock", "--listen", f"127.0.0.1:{port}",
        "--tokens-file", str(tokens),
    )  # fmt: skip
    return daemon, f"127.0.0.1:{port}", alice


def test_a_client_token_watches_its_own_leases_and_keeps_saying_so(make_daemon: Any, tmp_path: Any) -> None:
    daemon, server, alice = tcp_daemon_with_a_client(make_daemon, tmp_path)
    with daemon.client() as admin:
        theirs = admin.request(LeaseRequest(fraction=0.5, command="python theirs.py"))
    with connect(server, alice) as client:
        mine = client.request(LeaseRequest(fraction=0.25, command="python mine.py"))
        waiting = client.request(LeaseRequest(fraction=0.5))
    app = AdminApp([DaemonSource(server, alice)], min_interval_s=0.1)

    def banner() -> str:
        shown = app.query_one("#access")
        return str(shown.render()) if shown.display else ""

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: keys_of(app, "lease") == {mine.id}, "the client's own lease shown")
        assert keys_of(app, "queue") == {waiting.id}
        panel = app.query_one(GpuPanel)
        assert mine.id in panel.plain and theirs.id not in panel.plain and "(hidden)" in panel.plain
        said = banner()
        assert said == (
            f"watching {server} as a client (token:alice): your own leases and queued requests only, "
            "and the GPUs; admin actions are unavailable"
        )
        history = app.views[server].history[0]
        seen = len(history)
        await until(pilot, lambda: len(history) >= seen + 3, "three more refreshes")
        assert banner() == said  # still said, not a toast that has gone
        await until(pilot, lambda: {"g", "l", "w"} <= footer_keys(app), "the footer's keys")
        assert not footer_keys(app) & ACTION_KEYS
        await pilot.press("l")
        assert not footer_keys(app) & ACTION_KEYS
        assert not offers_actions(app) and "Revoke lease" not in await palette(pilot, "revoke")
        assert "Leases view" in await palette(pilot, "leases")
        await pilot.press("x", "r")
        assert app.screen is app.screen_stack[0]  # no dialog opened
        await pilot.press("enter")  # the lease's details: what a client may see of it
        events = await until(pilot, lambda: app.screen.query("#events"), "the lease's details")
        assert str(events.first().render()) == "events: only an admin may read them"
        await pilot.press("escape")
        assert not [note for note in notes(app) if "admin role" in note or "PERMISSION" in note]

    drive(app, scenario)
    with daemon.client() as admin:
        assert admin.get(mine.id).state == pb.LEASE_STATE_ACTIVE
        assert admin.get(theirs.id).state == pb.LEASE_STATE_ACTIVE


def test_keys_move_the_cursor_the_header_names_its_lease_and_it_falls_back_when_the_lease_ends(
    daemon: Daemon,
) -> None:
    with daemon.client() as client:
        leases = [client.request(LeaseRequest(memory_mib=100, command=f"job{n}")) for n in range(3)]
    app = AdminApp([DaemonSource(daemon.server)], min_interval_s=0.1)

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: len(keys_of(app, "lease")) == 3, "three leases shown")
        await pilot.press("l")
        await until(pilot, lambda: app.sub_title.startswith(leases[0].id), "the header naming the first lease")
        await pilot.press("end")
        assert app.sub_title == f"{leases[2].id} on {daemon.server}"
        await pilot.press("up")
        assert app.sub_title.startswith(leases[1].id)
        await pilot.press("home", "down", "down", "down")  # past the last row: stays on it
        assert table(app, "lease").selected_key == f"{daemon.server}|{leases[2].id}"
        with daemon.client() as client:
            client.release(leases[2].id)
        await until(pilot, lambda: app.sub_title.startswith(leases[1].id), "the cursor on the row now last")
        await pilot.press("g")
        assert app.sub_title == daemon.server  # no lease selected on the GPUs view

    drive(app, scenario)


def test_revoke_resize_and_the_queue_moving(daemon: Daemon) -> None:
    with daemon.client() as client:
        first = client.request(LeaseRequest(fraction=0.5, command="python serve.py"))
        second = client.request(LeaseRequest(fraction=0.5))
        waiting = client.request(LeaseRequest(fraction=0.5))
    app = AdminApp([DaemonSource(daemon.server)])

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: keys_of(app, "lease") == {first.id, second.id}, "two leases shown")
        assert keys_of(app, "queue") == {waiting.id}
        panel = app.query_one(GpuPanel)
        assert "SIMULATED" in panel.plain and first.id in panel.plain
        await pilot.press("l")
        lease_table = table(app, "lease")
        lease_table.move_to(f"{daemon.server}|{first.id}")
        await pilot.press("x")
        await pilot.press(*"maintenance", "enter")
        await until(pilot, lambda: waiting.id in keys_of(app, "lease"), "the queued request granted")
        assert first.id not in keys_of(app, "lease") and not keys_of(app, "queue")
        lease_table.move_to(f"{daemon.server}|{second.id}")
        await pilot.press("r")
        await pilot.press(*"0.25", "enter")
        await until(pilot, lambda: f"lease {second.id} resized" in notes(app), "the resize done")

    drive(app, scenario)
    with daemon.client() as client:
        revoked = client.get(first.id)
        assert revoked.state == pb.LEASE_STATE_REVOKED and revoked.end_reason == "maintenance"
        assert client.get(waiting.id).state == pb.LEASE_STATE_ACTIVE
        assert client.get(second.id).allocations[0].memory_mib == 0.25 * client.gpus()[0].capacity_mib


def test_a_refresh_keeps_the_cursor_on_its_lease(daemon: Daemon) -> None:
    with daemon.client() as client:
        leases = [client.request(LeaseRequest(memory_mib=100)) for _ in range(3)]
    app = AdminApp([DaemonSource(daemon.server)], min_interval_s=0.1)

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: len(keys_of(app, "lease")) == 3, "three leases shown")
        await pilot.press("l")
        lease_table = table(app, "lease")
        target = f"{daemon.server}|{leases[2].id}"
        lease_table.move_to(target)
        with daemon.client() as client:
            client.release(leases[0].id)  # a row above it goes away
            added = client.request(LeaseRequest(memory_mib=100))
        await until(
            pilot,
            lambda: added.id in keys_of(app, "lease") and leases[0].id not in keys_of(app, "lease"),
            "the refresh",
        )
        assert lease_table.selected_key == target
        await pilot.press("x", *"kept", "enter")
        await until(pilot, lambda: leases[2].id not in keys_of(app, "lease"), "the revoke")

    drive(app, scenario)
    with daemon.client() as client:
        assert client.get(leases[2].id).state == pb.LEASE_STATE_REVOKED  # the lease under the cursor, not its row
        assert client.get(leases[1].id).state == pb.LEASE_STATE_ACTIVE


def test_priority_drain_and_checked_input(daemon: Daemon) -> None:
    with daemon.client() as client:
        client.request(LeaseRequest(fraction=1.0))
        queued = client.request(LeaseRequest(fraction=0.5))
    app = AdminApp([DaemonSource(daemon.server)])

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: keys_of(app, "queue") == {queued.id}, "the queue shown")
        await pilot.press("w", "p", *"12", "enter")
        await until(pilot, lambda: f"{queued.id}: priority 12" in notes(app), "the priority set")
        await pilot.press("l", "r", "0", "enter")
        error = await until(pilot, lambda: str(app.screen.query_one("#error").render()), "the input refused")
        assert error == "a fraction of a GPU is in (0, 1], got 0"
        await pilot.press("escape", "g")
        app.query_one(GpuPanel).focus()
        await pilot.press("d")
        await until(pilot, lambda: app.query_one(GpuPanel).gpu.drained, "the GPU drained")

    drive(app, scenario)
    with daemon.client() as client:
        assert client.get(queued.id).priority == 12
        assert client.gpus()[0].drained


def test_a_readonly_console_changes_nothing_and_offers_no_actions(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(fraction=0.25))
    app = AdminApp([DaemonSource(daemon.server)], readonly=True)

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: keys_of(app, "lease") == {lease.id}, "the lease shown")
        assert "read-only (--readonly)" in str(app.query_one("#access").render())
        await until(pilot, lambda: {"g", "l", "w"} <= footer_keys(app), "the footer's keys")
        assert not footer_keys(app) & ACTION_KEYS
        await pilot.press("l")
        assert not footer_keys(app) & ACTION_KEYS
        assert not offers_actions(app) and "Revoke lease" not in await palette(pilot, "revoke")
        await pilot.press("x")
        assert app.screen is app.screen_stack[0]  # no dialog opened

    drive(app, scenario)
    with daemon.client() as client:
        assert client.get(lease.id).state == pb.LEASE_STATE_ACTIVE


def test_a_daemon_that_goes_away_is_shown_stale_and_comes_back(daemon: Daemon) -> None:
    with daemon.client() as client:
        client.request(LeaseRequest(fraction=0.25, ttl_s=600))
    app = AdminApp([DaemonSource(daemon.server)])

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: app.query(GpuPanel), "the GPU shown")
        daemon.stop()
        await until(pilot, lambda: app.query_one(GpuPanel).has_class("stale"), "the daemon shown stale", 20)
        assert "STALE" in str(app.query_one(GpuPanel).border_subtitle)
        daemon.restart()
        await until(pilot, lambda: not app.query_one(GpuPanel).has_class("stale"), "the daemon back", 30)

    drive(app, scenario)


def test_sizes_are_checked_before_they_are_sent() -> None:
    assert parse_size("0.25", 8192) == (0.25, None)
    assert parse_size("1", 8192) == (1.0, None)  # the whole GPU, as `-p 1` is
    assert parse_size("50%", 8192) == (0.5, None)
    assert parse_size("512MiB", 8192) == (None, 512)
    assert parse_size("4GiB", 8192) == (None, 4096)
    refused = (
        ("", "give a fraction like 0.25"),
        ("3", "3 is more than a whole GPU"),
        ("1.5", "for memory add a unit, like 1.5GiB"),
        ("0", "in (0, 1], got 0"),
        ("150%", "in (0, 1], got 150%"),
        ("nan", "in (0, 1], got nan"),
        ("inf", "in (0, 1], got inf"),
        ("lots", "not a fraction or a memory size: 'lots'"),
        ("4KiB", "not a fraction or a memory size: '4KiB'"),
        ("9GiB", "more than the GPU lends (8 GiB)"),
    )
    for bad, message in refused:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_size(bad, 8192)


def test_the_filter_narrows_the_rows_and_escape_closes_it(daemon: Daemon) -> None:
    with daemon.client() as client:
        kept = client.request(LeaseRequest(memory_mib=100, command="python serve.py"))
        client.request(LeaseRequest(memory_mib=100, command="python train.py"))
    app = AdminApp([DaemonSource(daemon.server)])

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: len(keys_of(app, "lease")) == 2, "two leases")
        await pilot.press("l", "slash", *"serve", "enter")
        shown = table(app, "lease")
        await until(pilot, lambda: len(shown.shown_keys) == 1, "the filter applied")
        assert shown.selected_key == f"{daemon.server}|{kept.id}"
        await pilot.press("slash", "escape")
        assert not app.query_one("#filter").display and app.focused is shown

    drive(app, scenario)


def test_the_resize_box_reads_sizes_as_the_cli_does(daemon: Daemon) -> None:
    """A bare number is a fraction of a GPU (1 is the whole GPU, as `-p 1` is); a size has a unit;
    a bare number above 1 is refused, not read as MiB."""
    with daemon.client() as client:
        lease = client.request(LeaseRequest(fraction=0.5))
        capacity = client.gpus()[0].capacity_mib
    app = AdminApp([DaemonSource(daemon.server)])

    def size() -> int:
        with daemon.client() as client:
            return client.get(lease.id).allocations[0].memory_mib

    async def resize(pilot: Any, text: str) -> None:
        await pilot.press("r", *text, "enter")
        await until(pilot, lambda: app.screen is app.screen_stack[0], f"the resize to {text} sent")

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: keys_of(app, "lease") == {lease.id}, "the lease shown")
        await pilot.press("l")
        await resize(pilot, "1")
        await until(pilot, lambda: size() == capacity, "the lease grown to the whole GPU")
        await resize(pilot, "0.25")
        await until(pilot, lambda: size() == capacity // 4, "the lease at a quarter of the GPU")
        await resize(pilot, "4GiB")
        await until(pilot, lambda: size() == 4096, "the lease at 4 GiB")
        await pilot.press("r", "3", "enter")
        error = await until(pilot, lambda: str(app.screen.query_one("#error").render()), "the input refused")
        assert error == (
            "3 is more than a whole GPU: a bare number is a fraction (1 is the whole GPU); "
            "for memory add a unit, like 3GiB"
        )
        await pilot.press("escape")

    drive(app, scenario)
    assert size() == 4096  # the refused 3 changed nothing


def test_a_console_on_an_admin_and_a_client_connection_acts_only_as_the_admin(make_daemon: Any, tmp_path: Any) -> None:
    daemon, server, alice = tcp_daemon_with_a_client(make_daemon, tmp_path)
    with connect(server, alice) as client:
        mine = client.request(LeaseRequest(fraction=0.25))
    app = AdminApp([DaemonSource(daemon.server), DaemonSource(server, alice)], min_interval_s=0.1)

    async def scenario(pilot: Any) -> None:
        rows = {f"{daemon.server}|{mine.id}", f"{server}|{mine.id}"}
        await until(pilot, lambda: set(table(app, "lease").keys) == rows, "the lease seen through both")
        await until(pilot, lambda: str(app.query_one("#access").render()).endswith("unavailable there"), "the line")
        await pilot.press("l")
        assert {"r", "x"} <= footer_keys(app)  # offered: this console is an admin on one of them
        table(app, "lease").move_to(f"{server}|{mine.id}")
        await pilot.press("x")
        assert app.screen is app.screen_stack[0]  # no dialog for the client connection's row
        assert f"{server}: watching as a client there, admin actions are unavailable" in notes(app)
        table(app, "lease").move_to(f"{daemon.server}|{mine.id}")
        await pilot.press("x")
        await until(pilot, lambda: app.screen is not app.screen_stack[0], "the revoke question")
        await pilot.press("escape")

    drive(app, scenario)
    with daemon.client() as admin:
        assert admin.get(mine.id).state == pb.LEASE_STATE_ACTIVE


class CountedSource(DaemonSource):
    """A daemon source that counts its tries to watch."""

    tries = 0

    def snapshots(self, min_interval_s: float) -> Iterator[pb.TelemetrySnapshot]:
        self.tries += 1
        return super().snapshots(min_interval_s)


def test_a_daemon_that_cannot_be_watched_is_named_with_why_for_as_long_as_it_lasts(
    make_daemon: Any, tmp_path: Any
) -> None:
    daemon, server, _ = tcp_daemon_with_a_client(make_daemon, tmp_path)
    refused = CountedSource(server, "bst_" + "1" * 40)
    app = AdminApp([DaemonSource(daemon.server), refused], min_interval_s=0.1)

    def line() -> str:
        return str(app.query_one("#access").render())

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: app.query(GpuPanel), "the GPU of the daemon that may be watched")
        said = await until(pilot, lambda: f"no data from {server}: bitshared refuses" in line() and line(), "the line")
        assert said.endswith("; trying again")
        tries = refused.tries
        await until(pilot, lambda: refused.tries >= tries + 2, "two more tries", 30)
        assert line() == said
        assert not [note for note in notes(app) if "showing its last data" in note]  # it has none

    drive(app, scenario)


def test_text_from_a_lease_cannot_drive_the_admins_terminal(daemon: Daemon) -> None:
    """A lease's command and host are the client's to choose: escape sequences in them (here: clear
    the screen, write elsewhere, set the window title) are drawn as marks, never sent to the terminal."""
    hostile = "job \x1b[2J\x1b[HPWNED\x1b]2;title\x07 \x9b31m\u202eevil"
    request = LeaseRequest(fraction=0.25, command=hostile).to_pb()
    request.client_host = "host\x1b[1;1H"  # as a client of its own making sends it
    with daemon.client() as client:
        lease = client.call(client.leases.RequestLease, request)
    app = AdminApp([DaemonSource(daemon.server)])
    controls = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))} | {"\u202e"}

    def drawn(widget: Any) -> str:
        return "".join(segment.text for y in range(widget.size.height) for segment in widget.render_line(y))

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: keys_of(app, "lease") == {lease.id}, "the lease shown")
        await pilot.press("l")
        await until(pilot, lambda: "PWNED" in drawn(table(app, "lease")), "the lease's row drawn")
        row = drawn(table(app, "lease"))
        assert not controls & set(row) and "job \ufffd[2J\ufffd[HPWNED" in row and "host\ufffd[1;1H" in row
        await pilot.press("enter")
        summary = await until(pilot, lambda: app.screen.query("#summary"), "the lease's details")
        text = str(summary.first().render())
        assert not controls & set(text.replace("\n", "")) and "PWNED" in text

    drive(app, scenario)
