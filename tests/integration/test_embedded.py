"""With no server configured, client verbs start a per-user daemon once and reuse it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

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
