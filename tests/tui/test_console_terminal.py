"""bitshare-admin in a real terminal (tmux) against a real daemon: it draws, follows the keys,
revokes the lease under the cursor, and quits cleanly on Ctrl-Q."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bitshare.client import LeaseRequest
from bitshare.v1 import bitshare_pb2 as pb

from ..conftest import Daemon, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def test_the_console_in_a_terminal_revokes_the_lease_under_the_cursor(daemon: Daemon, tmp_path: Path) -> None:
    with daemon.client() as client:
        first = client.request(LeaseRequest(fraction=0.25, command="python serve.py"))
        second = client.request(LeaseRequest(fraction=0.25, command="python train.py"))
    session = f"bs-admin-{uuid.uuid4().hex[:8]}"
    status = tmp_path / "status"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in daemon.env.items() if k.startswith(("XDG_", "PYTHON")))
    command = (
        f"env {env} {shlex.quote(sys.executable)} -m bitshare.tui --server {daemon.server}; "
        f"echo exit=$? > {status}; sleep 60"
    )
    _tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "40", command)
    try:
        pane = lambda: _tmux("capture-pane", "-p", "-t", session)  # noqa: E731
        header = lambda: pane().splitlines()[0]  # noqa: E731
        wait_for(lambda: "GPU 0 ·" in pane() and first.id in pane(), 30, "the GPU view with its partitions")
        assert "SIMULATED" in pane()
        _tmux("send-keys", "-t", session, "l")
        wait_for(lambda: "OWNER" in pane() and second.id in pane(), 10, "the lease table")
        wait_for(lambda: first.id in header(), 10, "the header naming the first lease")
        _tmux("send-keys", "-t", session, "Down")
        wait_for(lambda: second.id in header(), 10, "the cursor on the second lease")
        _tmux("send-keys", "-t", session, "x")
        wait_for(lambda: f"Revoke lease {second.id}" in pane(), 10, "the revoke question")
        _tmux("send-keys", "-t", session, "disk swap", "Enter")
        wait_for(lambda: second.id not in pane(), 15, "the revoked lease gone from the table")
        with daemon.client() as client:
            assert client.get(second.id).state == pb.LEASE_STATE_REVOKED
            assert client.get(second.id).end_reason == "disk swap"
            assert client.get(first.id).state == pb.LEASE_STATE_ACTIVE
        _tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: status.exists() and status.read_text().strip(), 15, "the console to quit")
        assert status.read_text().strip() == "exit=0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
