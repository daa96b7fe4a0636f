"""The simulated GPUs' registry: what processes publish, and what the daemon refuses to believe."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bitshare.simgpu import DevicePool, read_registry

from ..support.harness import wait_for

MIB = 1024 * 1024


def test_a_pool_publishes_what_it_holds_and_frees(tmp_path: Path) -> None:
    pool = DevicePool(0, "SIM-00-1024", 256 * MIB, tmp_path)
    held = pool.empty(64 * MIB, "uint8")
    [holding] = read_registry(tmp_path)
    assert (holding.pid, holding.gpu_uuid, holding.used_bytes, holding.limit_bytes) == (
        os.getpid(),
        "SIM-00-1024",
        64 * MIB,
        256 * MIB,
    )
    del held
    assert read_registry(tmp_path)[0].used_bytes == 0


def test_a_fifo_in_the_registry_does_not_block_the_reader(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / f"SIM-00-1024.{os.getpid()}")
    assert read_registry(tmp_path) == []  # returns at once; nothing is believed


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_nobody_can_charge_memory_to_another_users_process(tmp_path: Path) -> None:
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    victim = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *sleep])
    try:
        wait_for(lambda: psutil.Process(victim.pid).uids().effective == 65534, 10, "setpriv to change user")
        forged = tmp_path / f"SIM-00-1024.{victim.pid}"
        started = psutil.Process(victim.pid).create_time()
        record = (10**12).to_bytes(8, "little") + bytes(16) + struct.pack("<d", started)
        forged.write_bytes(record)  # a well-formed record, written by root, named for uid 65534's process
        assert read_registry(tmp_path) == []
    finally:
        victim.kill()
        victim.wait()


def test_a_record_left_under_a_reused_pid_is_ignored(tmp_path: Path) -> None:
    started = psutil.Process().create_time()
    stale = (64 * MIB).to_bytes(8, "little") + bytes(16) + struct.pack("<d", started - 3600)  # an hour older
    (tmp_path / f"SIM-00-1024.{os.getpid()}").write_bytes(stale)
    assert read_registry(tmp_path) == []
