"""bitshare-admin in a real terminal (tmux) against a real daemon: it draws, follows the keys,
revokes the lease under the cursor, and quits cleanly on Ctrl-Q."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

from bitshare.client.connection import LeaseRequest
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, Terminal, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def test_the_console_in_a_terminal_revokes_the_lease_under_the_cursor(daemon: Daemon, tmp_path: Path) -> None:
    with daemon.client() as client:
        first = client.request(LeaseRequest(fraction=0.25, command="python serve.py"))
        second = client.request(LeaseRequest(fraction=0.25, command="python train.py"))
    command = f"{shlex.quote(sys.executable)} -m bitshare.tui --server {daemon.server}"
    with Terminal(daemon, tmp_path, command, size=(140, 40)) as terminal:
        header = lambda: terminal.screen().splitlines()[0]  # noqa: E731
        wait_for(
            lambda: "GPU 0 ·" in terminal.screen() and first.id in terminal.screen(),
            30,
            "the GPU view with its partitions",
        )
        assert "SIMULATED" in terminal.screen()
        terminal.send("l")
        wait_for(lambda: "OWNER" in terminal.screen() and second.id in terminal.screen(), 10, "the lease table")
        wait_for(lambda: first.id in header(), 10, "the header naming the first lease")
        terminal.send("Down")
        wait_for(lambda: second.id in header(), 10, "the cursor on the second lease")
        terminal.send("x")
        wait_for(lambda: f"Revoke lease {second.id}" in terminal.screen(), 10, "the revoke question")
        terminal.send("disk swap", "Enter")
        wait_for(lambda: second.id not in terminal.screen(), 15, "the revoked lease gone from the table")
        with daemon.client() as client:
            assert client.get(second.id).state == pb.LEASE_STATE_REVOKED
            assert client.get(second.id).end_reason == "disk swap"
            assert client.get(first.id).state == pb.LEASE_STATE_ACTIVE
        terminal.send("C-q")
        wait_for(lambda: terminal.exit_status() is not None, 15, "the console to quit")
        assert terminal.exit_status() == 0
