"""Which processes belong to which lease, with real processes: ownership, nesting, ended roots."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from bitshare.daemon.enforcement.processes import ClaimRefused, ProcessTracker

from ..support.harness import wait_for

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def start(procs: list[subprocess.Popen], argv: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(argv)
    procs.append(proc)
    return proc


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_only_the_callers_own_processes_can_be_named(started: list[subprocess.Popen]) -> None:
    mine = start(started, ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", *SLEEP])
    nobody = start(started, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *SLEEP])
    for proc, uid in ((mine, 1000), (nobody, 65534)):
        wait_for(lambda proc=proc, uid=uid: psutil.Process(proc.pid).uids().real == uid, 10, "setpriv to change user")
    tracker = ProcessTracker()
    with pytest.raises(ClaimRefused, match=f"process {nobody.pid} is not the caller's"):
        tracker.claim("L1", [mine.pid, nobody.pid], uid=1000)
    assert not tracker.has("L1")  # all or nothing: the caller's own process was not taken either
    tracker.claim("L1", [nobody.pid], uid=65534)
    assert tracker.owners() == {nobody.pid: "L1"}


def test_a_nested_lease_owns_the_processes_under_its_own_root(started: list[subprocess.Popen]) -> None:
    spawn_child = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(60)"
    outer = start(started, [sys.executable, "-c", spawn_child, *SLEEP])
    tracker = ProcessTracker()
    tracker.claim("outer", [outer.pid], uid=os.getuid())
    inner = wait_for(lambda: [p for p, lease in tracker.owners().items() if p != outer.pid], 10, "the child")[0]
    tracker.claim("inner", [inner], uid=os.getuid())
    assert tracker.owners() == {outer.pid: "outer", inner: "inner"}
    with pytest.raises(ClaimRefused, match="was named for another lease"):
        tracker.claim("third", [inner], uid=os.getuid())


def test_an_ended_root_is_not_taken_back_under_its_reused_pid(started: list[subprocess.Popen]) -> None:
    proc = start(started, SLEEP)
    tracker = ProcessTracker()
    tracker.claim("L", [proc.pid], uid=os.getuid())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tracker.owners() == {}  # the scan notices it ended
    tracker.claim("L", [proc.pid], uid=os.getuid())  # as a holder re-sending its list would
    assert tracker.processes("L") == []
