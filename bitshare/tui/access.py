"""What the console may do, and the line that says so (pure: no Textual).

A console run with ``--readonly`` takes no actions; on a daemon where the caller is a client (a
client token, or a local user who is not an admin) it sees the GPUs and its own leases, and the
daemon would refuse every admin action. What may not be done is not offered: no key in the footer,
no command in the palette, and a line at the top that stays there says why. That line also names
each daemon the console has no data from yet, and why.
"""

from __future__ import annotations

from collections.abc import Mapping

# The console's actions that change a daemon's state (the daemon's admin API).
ADMIN_ACTIONS = frozenset({"resize", "revoke", "priority", "drain"})


def may(action: str, readonly: bool, roles: Mapping[str, str]) -> bool:
    """Whether to offer ``action``: an admin action needs a console that is not read-only and a
    daemon on which the caller is known to be an admin (``roles``: server -> "admin", "client",
    or "unknown" before its first snapshot)."""
    if action not in ADMIN_ACTIONS:
        return True
    return not readonly and "admin" in roles.values()


def access_line(readonly: bool, clients: Mapping[str, str], admin_elsewhere: bool = False) -> str:
    """The standing line on what this console can show and do ("" for an admin console);
    ``clients``: server -> caller, for each daemon on which the caller is a client;
    ``admin_elsewhere``: whether the caller is an admin on some other daemon shown."""
    if readonly:
        return "read-only (--readonly): watching only; resize, revoke, priority and drain are off"
    if not clients:
        return ""
    watched = ", ".join(f"{server} as a client ({caller})" for server, caller in clients.items())
    there = " there" if admin_elsewhere else ""
    return (
        f"watching {watched}: your own leases and queued requests only, and the GPUs; "
        f"admin actions are unavailable{there}"
    )


def waiting_line(server: str, error: str) -> str:
    """The standing line for a daemon the console has no data from (it keeps trying)."""
    return f"no data from {server}: {error}; trying again"
