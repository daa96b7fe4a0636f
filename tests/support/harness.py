"""Test helpers: a real bitshared in a subprocess, the real CLI, and deadline waits."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_RUNTIME_DIR"] = str(tmp / "runtime")
    env["XDG_STATE_HOME"] = str(tmp / "state-home")
    env["XDG_CONFIG_HOME"] = str(tmp / "config-home")
    env.pop("BITSHARE_SERVER", None)
    env.pop("BITSHARE_TOKEN", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a process that hangs in a test is ended with SIGABRT: its stacks are printed
    (tmp / "runtime").mkdir(exist_ok=True, mode=0o700)
    return env


class Daemon:
    """A real bitshared subprocess on a temporary socket and state directory."""

    def __init__(self, tmp: Path, args: list[str]) -> None:
        self.tmp = tmp
        self.socket = tmp / "bitshared.sock"
        self.state_dir = tmp / "state"
        self.args = args
        self.env = isolated_env(tmp)
        self.proc: subprocess.Popen | None = None
        self.log_path = tmp / "bitshared.log"
        self.server = f"unix:{self.socket}"

    def start(self, timeout: float = 15.0) -> Daemon:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bitshare.daemon",
                    "--listen",
                    self.server,
                    "--state-dir",
                    str(self.state_dir),
                    *self.args,
                ],
                stdout=log,
                stderr=log,
                env=self.env,
            )
        wait_for(lambda: self._ready() or self.proc.poll() is not None, timeout, "bitshared to listen")
        if self.proc.poll() is not None:
            raise AssertionError(f"bitshared exited {self.proc.returncode}: {self.log()}")
        return self

    def _ready(self) -> bool:
        return "daemon.ready" in self.log()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def restart(self) -> Daemon:
        with open(self.log_path, "w"):
            pass
        return self.start()

    def client(self, token: str = ""):
        from bitshare.client.connection import connect

        return connect(self.server, token)


def refused_start(*args: str) -> subprocess.CompletedProcess:
    """Run bitshared with arguments it must refuse; it exits at once, so this waits for it."""
    return subprocess.run([sys.executable, "-m", "bitshare.daemon", *args], capture_output=True, text=True, timeout=30)


def assert_refused_in_one_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    """``done`` is bitshared refusing to start over its configuration: exit 78, one error line
    holding each of ``expected``; returns that line."""
    assert done.returncode == 78, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1, done.stderr
    assert line.startswith("bitshared: error: "), line
    for text in expected:
        assert text in line, line
    return line


def hold_and_exit(code: int) -> str:
    """A leased command: writes its lease id to argv[1], runs until argv[2] exists (at most 120 s),
    then exits with ``code``, its own exit code."""
    return f"""
import os, sys, time, pathlib
pathlib.Path(sys.argv[1]).write_text(os.environ["BITSHARE_LEASE_ID"])
deadline = time.monotonic() + 120
while not pathlib.Path(sys.argv[2]).exists() and time.monotonic() < deadline:
    time.sleep(0.02)
sys.exit({code})
"""


def bitshare_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bitshare", *args]


class Terminal:
    """A command run in a real terminal (a tmux session), in the daemon's environment; what it
    shows is read with ``screen()``, keys are typed with ``send()``, and its exit status is kept."""

    def __init__(self, daemon: Daemon, tmp: Path, command: str, size: tuple[int, int] = (120, 20)) -> None:
        self.session = f"bs-{uuid.uuid4().hex[:8]}"
        self._status = tmp / f"{self.session}.status"
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in daemon.env.items() if k.startswith(("XDG_", "PYTHON")))
        shell = f"env {env} {command}; echo $? > {self._status}; sleep 60"
        self._tmux("new-session", "-d", "-s", self.session, "-x", str(size[0]), "-y", str(size[1]), shell)

    @staticmethod
    def _tmux(*args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys)

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended, else None."""
        text = self._status.read_text().strip() if self._status.exists() else ""
        return int(text) if text else None

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True, check=False)


def make_token(tokens: Path, name: str, role: str) -> str:
    """A bearer token made with the real `bitshare token create` (its hash appended to ``tokens``)."""
    done = subprocess.run(
        bitshare_cmd("token", "create", "--name", name, "--role", role, "--file", str(tokens)),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run_cli(
    daemon: Daemon,
    *args: str,
    timeout: float = 60,
    input: str | None = None,
    server: str | None = None,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run the real ``bitshare`` CLI against the daemon and wait for it; a hang fails with its stacks."""
    command = bitshare_cmd("--server", server or daemon.server, *args)
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env or daemon.env,
        )
        try:
            out, _ = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            for hung in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
                with contextlib.suppress(psutil.Error):
                    hung.send_signal(signal.SIGABRT)  # each prints its stacks (PYTHONFAULTHANDLER)
            proc.wait(timeout=10)
            err.seek(0)
            raise AssertionError(
                f"{' '.join(args)} hung for {timeout:g}s; its stderr:\n{err.read()}\n"
                f"the daemon's log ends:\n{daemon.log()[-4000:]}"
            ) from None
        err.seek(0)
        return subprocess.CompletedProcess(command, proc.returncode, out, err.read())


def spawn_cli(
    daemon: Daemon, *args: str, server: str | None = None, env: dict | None = None, stderr_path: Path | None = None
) -> subprocess.Popen:
    """Start the real ``bitshare`` CLI in the background (its stderr goes to a file to read later)."""
    command = bitshare_cmd("--server", server or daemon.server, *args)
    if stderr_path is None:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or daemon.env
        )
    with open(stderr_path, "w") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env or daemon.env)


def finish(proc: subprocess.Popen, timeout: float, stderr_path: Path | None = None) -> tuple[int, str]:
    """Wait for a background CLI and return (exit code, stdout); a hang fails with the CLI's stacks."""
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out or ""
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=10)  # not communicate(): a leased command it left behind may hold stdout open
        err = stderr_path.read_text() if stderr_path is not None else "(not captured)"
        raise AssertionError(f"command hung for {timeout:g}s; its stderr:\n{err}") from None


def daemon_with_token(make_daemon, tmp: Path, role: str, name: str = "ci") -> tuple[Daemon, str, str]:
    """A simulated daemon on a Unix socket and loopback TCP, and a ``role`` token for it:
    (the daemon, its TCP address, the token)."""
    tokens = tmp / "tokens.toml"
    token = make_token(tokens, name, role)
    address = f"127.0.0.1:{free_port()}"
    daemon = make_daemon(
        "--simulate", "1x16GiB", "--listen", f"unix:{tmp}/d.sock", "--listen", address, "--tokens-file", str(tokens)
    )
    return daemon, address, token
