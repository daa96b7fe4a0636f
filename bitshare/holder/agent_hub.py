"""The launcher's side of the in-process agent: agents connect here, resizes go out from here.

``bitshare run`` opens a Unix socket in a private directory and puts the agent's
boot directory first on the command's ``PYTHONPATH``. Every Python process of the
lease then starts the agent, which connects, says which libraries it limits, and
applies the resizes sent to it. Messages are JSON lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BOOT_DIR = Path(__file__).resolve().parent / "agent"


def agent_environment(env: dict[str, str]) -> dict[str, str]:
    """Make the Python processes started with ``env`` start the agent. Without a hub's socket
    (a Slurm job) it holds them to the partition in their environment, without live resizes."""
    python_path = env.get("PYTHONPATH", "")
    return {"PYTHONPATH": str(BOOT_DIR) + (os.pathsep + python_path if python_path else "")}


@dataclass
class AgentState:
    """One connected process's agent."""

    pid: int = 0
    applied: list[str] = field(default_factory=list)  # libraries it limits


class AgentHub:
    def __init__(self, sizes_mib: list[int]) -> None:
        self.sizes_mib = list(sizes_mib)
        self.on_change: Callable[[], None] = lambda: None  # an agent came, went, or limited a library
        self.agents: dict[socket.socket, AgentState] = {}
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="bitshare-agent-"))  # mode 0700: this user's processes only
        self.path = self._dir / "agent.sock"
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._server.bind(str(self.path))
            self._server.listen(64)
        except OSError:
            self._server.close()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._closed = False
        threading.Thread(target=self._accept, name="bitshare-agent-hub", daemon=True).start()

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """The variables that make the command's Python processes start the agent."""
        return {"BITSHARE_AGENT_SOCKET": str(self.path), **agent_environment(env)}

    @property
    def active(self) -> bool:
        """Some process of the lease has the agent limiting a library."""
        with self._lock:
            return any(state.applied for state in self.agents.values())

    def resize(self, sizes_mib: list[int]) -> None:
        """Send the new partition to every connected agent."""
        self.sizes_mib = list(sizes_mib)
        data = (json.dumps({"memory_mib": self.sizes_mib}) + "\n").encode()
        with self._lock:
            connections = list(self.agents)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.sendall(data)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        with self._lock:
            connections = list(self.agents)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        shutil.rmtree(self._dir, ignore_errors=True)

    # ----- threads -------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.agents[connection] = AgentState()
            threading.Thread(target=self._serve, args=(connection,), name="bitshare-agent-conn", daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            with connection.makefile("r", encoding="utf-8") as lines:
                for line in lines:
                    self._take(connection, line)
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self.agents.pop(connection, None)
            connection.close()
            self.on_change()

    def _take(self, connection: socket.socket, line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        with self._lock:
            state = self.agents.get(connection)
            if state is None:
                return
            if isinstance(message.get("pid"), int):
                state.pid = message["pid"]
            if isinstance(message.get("applied"), list):
                state.applied = [str(name) for name in message["applied"]]
        self.on_change()
