"""The suite's fixtures: real daemons, stopped after each test (helpers live in tests/support/)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support.harness import Daemon


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []

    def factory(*args: str, name: str = "d") -> Daemon:
        home = tmp_path / name
        home.mkdir(exist_ok=True)
        daemon = Daemon(home, list(args)).start()
        daemons.append(daemon)
        return daemon

    yield factory
    for daemon in daemons:
        daemon.stop()


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    # The default TTL: requests queued by tests that do not heartbeat must not expire on a slow machine.
    return make_daemon("--simulate", "1x16GiB")
