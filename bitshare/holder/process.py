"""Run a command in its own process group, forward signals to it, and end it on demand."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil

from ..errors import CommandNotFound

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def exit_code(returncode: int) -> int:
    """A child's exit status as a shell reports it: its code, or 128 + the signal that ended it."""
    return 128 - returncode if returncode < 0 else returncode


class Supervised:
    """A command started in a new process group (so the whole tree can be ended)."""

    def __init__(self, argv: list[str], env: dict[str, str], on_exit: Callable[[], None] = lambda: None) -> None:
        # posix_spawn puts the child in its own group before it runs, without a Python
        # pre-exec hook (unsafe in a process with threads, as this one has).
        try:
            self.pid = os.posix_spawnp(argv[0], argv, env, setpgroup=0)
        except FileNotFoundError:
            raise CommandNotFound(f"command not found: {argv[0]}") from None
        except PermissionError:
            raise CommandNotFound(f"permission denied: {argv[0]}") from None
        self.pgid = self.pid
        self.returncode: int | None = None  # as subprocess reports it: negative for a signal
        self.exited = threading.Event()
        self._on_exit = on_exit
        threading.Thread(target=self._wait, name="bitshare-child", daemon=True).start()

    def _wait(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        self.exited.set()
        self._on_exit()

    def cpu_seconds(self) -> float:
        """CPU time used so far by the command and its descendants that are still running."""
        total = 0.0
        try:
            leader = psutil.Process(self.pid)
            for proc in [leader, *leader.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
        except psutil.Error:
            pass
        return total

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)

    def terminate(self, grace_s: float) -> None:
        """SIGTERM to the group, then SIGKILL after the grace period."""
        self.signal(signal.SIGTERM)
        if not self.exited.wait(grace_s):
            self.signal(signal.SIGKILL)
            self.exited.wait()
        self.signal(signal.SIGKILL)  # children that outlived the leader

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Give the terminal to the command while it runs (as a shell does), and forward signals."""
        previous = {sig: signal.signal(sig, lambda s, _f: self.signal(s)) for sig in FORWARDED}
        tty = _controlling_tty()
        if tty is not None:
            old_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            try:
                os.tcsetpgrp(tty, self.pgid)
                self.signal(signal.SIGCONT)  # in case it read the terminal before it was given it
            except OSError:
                tty = None
        try:
            yield
        finally:
            if tty is not None:
                with contextlib.suppress(OSError):
                    os.tcsetpgrp(tty, os.getpgrp())
                signal.signal(signal.SIGTTOU, old_ttou)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _controlling_tty() -> int | None:
    """stdin's terminal, when this process is in its foreground group."""
    try:
        fd = sys.stdin.fileno()
        if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
            return fd
    except (OSError, ValueError, AttributeError):
        pass
    return None
