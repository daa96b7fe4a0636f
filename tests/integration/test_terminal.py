"""bitshare run in a real terminal (tmux): the command owns the terminal, and Ctrl-C reaches it."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bitshare.v1 import bitshare_pb2 as pb

from ..conftest import Daemon, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

INTERACTIVE = """
import signal, sys
print("name?", flush=True)
name = input()
print(f"hello {name}", flush=True)
try:
    signal.pause()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
"""


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def test_interactive_command_reads_the_terminal_and_gets_ctrl_c(daemon: Daemon, tmp_path: Path) -> None:
    session = f"bs-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "interactive.py"
    script.write_text(INTERACTIVE)
    status = tmp_path / "status"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in daemon.env.items() if k.startswith(("XDG_", "PYTHON")))
    command = (
        f"env {env} {shlex.quote(sys.executable)} -m bitshare --server {daemon.server} run -p 0.25 -- "
        f"{shlex.quote(sys.executable)} {script}; echo exit=$? > {status}; sleep 60"
    )
    _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "20", command)
    try:
        pane = lambda: _tmux("capture-pane", "-p", "-t", session)  # noqa: E731
        wait_for(lambda: "name?" in pane(), 30, "the prompt")
        _tmux("send-keys", "-t", session, "world", "Enter")
        wait_for(lambda: "hello world" in pane(), 15, "the answer read from the terminal")
        with daemon.client() as client:
            assert [lease.state for lease in client.all_leases()] == [pb.LEASE_STATE_ACTIVE]
        _tmux("send-keys", "-t", session, "C-c")
        wait_for(lambda: status.exists() and status.read_text().strip(), 15, "bitshare to exit")
        assert "interrupted" in pane()
        assert status.read_text().strip() == "exit=3"  # the command's own exit code
        with daemon.client() as client:
            assert [lease.state for lease in client.all_leases(include_ended=True)] == [pb.LEASE_STATE_RELEASED]
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
