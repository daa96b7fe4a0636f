"""With no server configured, client verbs start a per-user daemon once and reuse it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from bitshare.client.finding import Credentials, connect_default, running_default

from ..support.harness import isolated_env, wait_for


def test_run_starts_a_per_user_daemon_and_reuses_it(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    script = "import os; print(os.environ['BITSHARE_SERVER'], os.environ['BITSHARE_GPU_MEMORY_MIB'])"
    first = subprocess.run(
        [sys.executable, "-m", "bitshare", "run", "-p", "0.25", "--", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    lock = tmp_path / "state-home" / "bitshare" / "embedded" / "bitshared.lock"
    try:
        assert first.returncode == 0, first.stderr
        server, mib = first.stdout.split()
        assert server == f"unix:{tmp_path}/runtime/bitshare/bitshared.sock"
        assert mib == "3968"  # a quarter of one simulated 16 GiB GPU, less the reserve
        assert "started a per-user bitshared" in first.stderr and "SIMULATED" in first.stderr
        second = subprocess.run(
            [sys.executable, "-m", "bitshare", "run", "-p", "0.25", "--", "true"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert second.returncode == 0 and "started" not in second.stderr
        health = subprocess.run(
            [sys.executable, "-m", "bitshare", "health"], capture_output=True, text=True, env=env, timeout=60
        )
        assert health.returncode == 0 and "simulated" in health.stdout
    finally:
        if lock.exists() and lock.read_text().strip():
            pid = int(lock.read_text())
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not _alive(pid), 15, "the per-user daemon to stop")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_clients_starting_at_once_share_one_per_user_daemon(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "bitshare", "run", "-p", "0.25", "--", "true"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    results = [(run.wait(timeout=60), run.stderr.read()) for run in runs]
    lock = tmp_path / "state-home" / "bitshare" / "embedded" / "bitshared.lock"
    try:
        assert [code for code, _ in results] == [0, 0, 0, 0], results
        assert sum("started a per-user bitshared" in err for _, err in results) == 1
    finally:
        if lock.exists() and lock.read_text().strip():
            pid = int(lock.read_text())
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not _alive(pid), 15, "the per-user daemon to stop")


def _admin(env: dict[str, str]) -> subprocess.CompletedProcess:
    """bitshare-admin with no --server: it stops before drawing when it finds no daemon to watch."""
    return subprocess.run(
        [sys.executable, "-m", "bitshare.tui"], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_the_console_with_nothing_running_says_so_in_one_line(tmp_path: Path) -> None:
    done = _admin(isolated_env(tmp_path))
    assert done.returncode == 69
    assert done.stderr == "bitshare-admin: error: no daemon to watch: give --server or `servers` in the config\n"
    assert not (tmp_path / "runtime" / "bitshare").exists()  # looking starts no daemon


def test_the_cli_and_the_console_refuse_a_per_user_directory_others_can_write(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    shared = tmp_path / "runtime" / "bitshare"
    shared.mkdir(mode=0o700)
    shared.chmod(0o777)
    done = _admin(env)
    assert done.returncode == 77
    assert done.stderr == (
        f"bitshare-admin: error: {shared} is not a private directory of this user; remove it or set XDG_RUNTIME_DIR\n"
    )
    cli = subprocess.run(
        [sys.executable, "-m", "bitshare", "leases"], capture_output=True, text=True, env=env, timeout=60
    )
    assert cli.returncode == 77 and cli.stderr.count("\n") == 1
    assert "is not a private directory of this user" in cli.stderr


def test_the_console_and_the_cli_find_the_per_user_daemon_alike(tmp_path: Path, monkeypatch) -> None:
    env = isolated_env(tmp_path)
    for name in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, env[name])
    assert running_default() is None
    assert connect_default(Credentials(), start=False) is None  # not started: the CLI says none runs
    lock = tmp_path / "state-home" / "bitshare" / "embedded" / "bitshared.lock"
    try:
        started = connect_default(Credentials(), start=True)
        assert started is not None
        client, was_started = started
        with client:
            assert was_started and client.info.simulated
        assert running_default() == f"unix:{tmp_path}/runtime/bitshare/bitshared.sock"
        again = connect_default(Credentials(), start=True)
        assert again is not None and not again[1]  # found running, not started again
        again[0].close()
    finally:
        if lock.exists() and lock.read_text().strip():
            pid = int(lock.read_text())
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not _alive(pid), 15, "the per-user daemon to stop")
