"""A leased application driven line by line: ``bitshare run`` over a program from tests/apps/."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path

from .harness import Daemon, bitshare_cmd


class LeasedApp:
    """``bitshare run ... -- python APP``, where APP answers one line per command read on stdin."""

    def __init__(self, daemon: Daemon, tmp_path: Path, app: Path, *run_args: str) -> None:
        self.stderr_path = tmp_path / f"run-{id(self)}.err"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                bitshare_cmd("--server", daemon.server, "run", *run_args, "--", sys.executable, str(app)),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=daemon.env,
            )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put("")  # end of output

    def ask(self, command: str, timeout: float = 30.0) -> str:
        self.send(command)
        return self.receive(timeout, command)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = 30.0, what: str = "the last command") -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer to {what!r} in {timeout:g}s; stderr:\n{self.stderr()}") from None

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def pid(self) -> int:
        return int(self.ask("pid").split()[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            with_stdin = self.proc.stdin
            if with_stdin is not None:
                with_stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
