"""What the console offers, and the standing line that says what it can show and do."""

from __future__ import annotations

from bitshare.tui.access import ADMIN_ACTIONS, access_line, may


def test_admin_actions_are_offered_only_where_the_caller_is_an_admin() -> None:
    for action in ADMIN_ACTIONS:
        assert may(action, readonly=False, roles={"a": "admin", "b": "client"})
        assert not may(action, readonly=True, roles={"a": "admin"})
        assert not may(action, readonly=False, roles={"a": "client", "b": "client"})
        assert not may(action, readonly=False, roles={"a": "unknown"})  # not before the daemon has said
    assert may("show_tab", readonly=True, roles={"a": "client"})  # watching is always offered


def test_the_line_says_what_the_console_can_show_and_do() -> None:
    assert access_line(False, {}) == ""  # an admin console says nothing
    assert access_line(True, {"a": "token:alice"}).startswith("read-only (--readonly): watching only")
    assert access_line(False, {"gpu1:7443": "token:alice"}) == (
        "watching gpu1:7443 as a client (token:alice): your own leases and queued requests only, "
        "and the GPUs; admin actions are unavailable"
    )
    both = access_line(False, {"a:1": "token:alice", "b:1": "user:alice"}, admin_elsewhere=True)
    assert both.startswith("watching a:1 as a client (token:alice), b:1 as a client (user:alice):")
    assert both.endswith("admin actions are unavailable there")
