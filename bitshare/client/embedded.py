"""The embedded default: a per-user bitshared started on first use, like gpg-agent.

With no server configured and no system daemon, client verbs start one on a Unix
socket in the user's runtime directory and reuse it afterwards.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from .. import paths
from ..errors import Unreachable

START_TIMEOUT_S = 20.0


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
            return True
        except OSError:
            return False


def _serving(sock: Path) -> bool:
    """Whether a daemon answers on ``sock`` and on its credentials side socket (it is ready)."""
    return _listening(sock) and _listening(Path(f"{sock}.cred"))


def system_daemon() -> str | None:
    """The system daemon's address when one is listening."""
    if _listening(paths.SYSTEM_SOCKET):
        return f"unix:{paths.SYSTEM_SOCKET}"
    return None


def _lock_held(state_dir: Path) -> bool:
    """Whether a daemon holds the state directory's lock (see bitshare.daemon.server)."""
    try:
        fd = os.open(state_dir / "bitshared.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _lock_owner(state_dir: Path) -> int | None:
    """The pid the running daemon wrote into its lock file."""
    try:
        return int((state_dir / "bitshared.lock").read_text().strip())
    except (OSError, ValueError):
        return None


def running_embedded() -> str | None:
    """The per-user daemon's address when it is running.

    Its directory must be this user's own and private (raises Denied): in /tmp another user can
    create it first and serve a daemon of theirs from it.
    """
    try:
        paths.check_private_dir(paths.user_runtime_dir())
    except FileNotFoundError:
        return None
    sock = paths.embedded_socket()
    return f"unix:{sock}" if _serving(sock) else None


def ensure_embedded() -> tuple[str, bool]:
    """Return the per-user daemon's address, starting it if needed; the bool says it was started now."""
    running = running_embedded()
    if running:
        return running, False
    sock = paths.embedded_socket()
    runtime = paths.ensure_private_dir(paths.user_runtime_dir())
    state_dir = paths.user_state_dir() / "embedded"
    log_path = runtime / "bitshared.log"
    command = [sys.executable, "-m", "bitshare.daemon", "--listen", f"unix:{sock}", "--state-dir", str(state_dir)]
    with open(log_path, "ab") as log:
        daemon = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives this command, like gpg-agent
            close_fds=True,
            env={**os.environ, "NOTIFY_SOCKET": ""},
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _serving(sock):
            return f"unix:{sock}", _lock_owner(state_dir) == daemon.pid
        # Ours may have exited because another client started one at the same moment: that one
        # holds the state directory's lock, so wait for it to listen.
        if daemon.poll() is not None and not _lock_held(state_dir):
            raise Unreachable(f"the per-user bitshared did not start (exit {daemon.returncode}); see {log_path}")
        time.sleep(0.05)
    raise Unreachable(f"the per-user bitshared did not start within {START_TIMEOUT_S:g}s; see {log_path}")
