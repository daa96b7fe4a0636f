"""NVIDIA MPS, run by bitshared: one control daemon per GPU, each with its own pipe and log directory.

One control daemon per GPU (started with only that GPU visible) means one MPS server
per GPU, so the rule "one Unix user per MPS server at a time" binds per GPU, and the
scheduler can place another user's lease on another GPU instead of letting it hang
in CUDA initialisation. Clients reach their GPU's control daemon through
``CUDA_MPS_PIPE_DIRECTORY`` and are limited by ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil

from ...errors import DaemonError

CONTROL = "nvidia-cuda-mps-control"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
QUERY_TIMEOUT_S = 5.0


class MpsUnavailable(DaemonError):
    """MPS cannot run here; the message says why."""


def control_binary() -> str:
    path = shutil.which(CONTROL)
    if path is None:
        raise MpsUnavailable(f"{CONTROL} is not on PATH (it comes with the NVIDIA driver utilities)")
    return path


class MpsControl:
    """The MPS control daemon of one GPU."""

    def __init__(self, gpu_index: int, gpu_uuid: str, base_dir: Path, binary: str) -> None:
        self.gpu_index = gpu_index
        self.gpu_uuid = gpu_uuid
        self.binary = binary
        self.pipe_dir = base_dir / f"gpu{gpu_index}" / "pipe"
        self.log_dir = base_dir / f"gpu{gpu_index}" / "log"
        self.pid: int | None = None
        self.restarts = 0
        self.servers: dict[int, int] = {}  # MPS server pid -> the uid it serves, as last seen
        self.silent = 0  # checks in a row without an answer

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            CUDA_VISIBLE_DEVICES=self.gpu_uuid,
            CUDA_MPS_PIPE_DIRECTORY=str(self.pipe_dir),
            CUDA_MPS_LOG_DIRECTORY=str(self.log_dir),
        )
        return env

    def start(self) -> None:
        """Start the control daemon and wait until it answers; MpsUnavailable when it does not."""
        for directory in (self.pipe_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # Clients of every local user reach the pipe directory, whatever the daemon's umask.
        for directory in (self.pipe_dir.parent.parent, self.pipe_dir.parent, self.pipe_dir):
            os.chmod(directory, 0o755)
        pid_file = self.pipe_dir / "nvidia-cuda-mps-control.pid"
        self._stop_leftover(pid_file)
        try:
            result = subprocess.run(
                [self.binary, "-d"], env=self._env(), capture_output=True, text=True, timeout=START_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MpsUnavailable(f"{self.binary} -d for GPU {self.gpu_index}: {exc}") from None
        if result.returncode != 0:
            why = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
            raise MpsUnavailable(f"{self.binary} -d failed for GPU {self.gpu_index}: {why}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                self.pid = int(pid_file.read_text().strip())
                if self.answers():
                    return
            time.sleep(0.1)
        raise MpsUnavailable(f"the MPS control daemon of GPU {self.gpu_index} did not answer in {START_TIMEOUT_S:g}s")

    def alive(self) -> bool:
        """Our control daemon's process runs (a zombie, or another process under its pid, does not count)."""
        if self.pid is None:
            return False
        try:
            process = psutil.Process(self.pid)
            return process.status() != psutil.STATUS_ZOMBIE and "mps-control" in process.name()
        except psutil.Error:
            return False

    def _stop_leftover(self, pid_file: Path) -> None:
        """A control daemon left on this pipe directory by a bitshared that died is stopped first."""
        with contextlib.suppress(OSError, ValueError):
            self.pid = int(pid_file.read_text().strip())
            if self.alive():
                self.stop()
        self.pid = None
        pid_file.unlink(missing_ok=True)

    def answers(self) -> bool:
        """The control daemon replies to a query on its pipe."""
        return self.query("get_server_list") is not None

    def server_pids(self) -> dict[int, int] | None:
        """The MPS servers running now and the uid each serves, or None when the control daemon is silent."""
        listing = self.query("get_server_list")
        if listing is None:
            return None
        servers = {}
        for word in listing.split():
            if word.isdigit():
                with contextlib.suppress(psutil.Error):
                    servers[int(word)] = psutil.Process(int(word)).uids().real
        return servers

    def query(self, command: str) -> str | None:
        try:
            result = subprocess.run(
                [self.binary],
                input=command + "\n",
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=QUERY_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout if result.returncode == 0 else None

    def end_orphan_servers(self) -> None:
        """Kill the MPS servers a dead control daemon left behind: no new client can reach them."""
        for pid in self.servers:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if "mps-server" in process.name():
                    process.kill()
        self.servers = {}

    def stop(self) -> None:
        """Ask the control daemon to quit (it stops its server); kill it if it does not."""
        if not self.alive():
            return
        self.query("quit")
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive() and self.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None
