"""bitshare run in a real terminal (tmux): the command owns the terminal, and Ctrl-C reaches it."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, Terminal, wait_for

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


def test_interactive_command_reads_the_terminal_and_gets_ctrl_c(daemon: Daemon, tmp_path: Path) -> None:
    script = tmp_path / "interactive.py"
    script.write_text(INTERACTIVE)
    command = (
        f"{shlex.quote(sys.executable)} -m bitshare --server {daemon.server} run -p 0.25 -- "
        f"{shlex.quote(sys.executable)} {script}"
    )
    with Terminal(daemon, tmp_path, command) as terminal:
        wait_for(lambda: "name?" in terminal.screen(), 30, "the prompt")
        terminal.send("world", "Enter")
        wait_for(lambda: "hello world" in terminal.screen(), 15, "the answer read from the terminal")
        with daemon.client() as client:
            assert [lease.state for lease in client.all_leases()] == [pb.LEASE_STATE_ACTIVE]
        terminal.send("C-c")
        wait_for(lambda: terminal.exit_status() is not None, 15, "bitshare to exit")
        assert "interrupted" in terminal.screen()
        assert terminal.exit_status() == 3  # the command's own exit code
        with daemon.client() as client:
            assert [lease.state for lease in client.all_leases(include_ended=True)] == [pb.LEASE_STATE_RELEASED]
