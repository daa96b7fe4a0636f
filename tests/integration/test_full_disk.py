"""A state directory that cannot be written. A full disk: the daemon refuses changes with a clear
error rather than grant anything it cannot record, keeps serving the leases it has, and takes
changes again once it can write. A read-only one: it does not start, and says why in one line."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitshare.client.connection import LeaseRequest
from bitshare.errors import BitshareError
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount a small filesystem"
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs for the daemon's state."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def refused(call) -> str:
    with pytest.raises(BitshareError) as caught:
        call()
    return str(caught.value)


def test_a_full_disk_refuses_new_grants_and_keeps_the_granted(make_daemon, small_disk: Path) -> None:
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--state-dir", str(small_disk / "state"))
    with daemon.client() as client:
        kept = client.request(LeaseRequest(fraction=0.25, ttl_s=600))
        filler = fill(small_disk)
        message = refused(lambda: client.request(LeaseRequest(fraction=0.25)))
        assert "cannot write its state" in message and "refuses changes until it can" in message
        assert "\n" not in message.strip()
        # Nothing unrecorded is shown or acted on; what was granted is served as before.
        assert [lease.id for lease in client.all_leases()] == [kept.id]
        assert client.gpus()[0].granted_mib == kept.allocations[0].memory_mib
        assert client.keep_alive([kept.id])[0].state == pb.LEASE_STATE_ACTIVE
        assert "refuses changes" in refused(lambda: client.release(kept.id))
        assert "refuses changes" in refused(lambda: client.drain(0, True))
        assert daemon.proc.poll() is None
        filler.unlink()  # room again: within a few probes, changes are taken
        later = wait_for(lambda: _try(lambda: client.request(LeaseRequest(fraction=0.25, ttl_s=600))), 15, "a grant")
        assert {lease.id for lease in client.all_leases()} == {kept.id, later.id}
    daemon.kill9()
    daemon.restart()  # what the disk holds is exactly what was acknowledged
    with daemon.client() as client:
        assert {lease.id for lease in client.all_leases()} == {kept.id, later.id}
        kinds = [e.kind for e in client.events(limit=20)]
        assert "store_writable" in kinds


def test_a_read_only_state_directory_is_refused_at_start_in_one_line(make_daemon, small_disk: Path) -> None:
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--state-dir", str(small_disk / "state"))
    with daemon.client() as client:
        kept = client.request(LeaseRequest(fraction=0.25, ttl_s=600))
    daemon.stop()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:  # it cannot even hold its state lock: it starts nothing, so it grants nothing
        with pytest.raises(AssertionError, match="exited 1"):
            daemon.restart()
        last = daemon.log().strip().splitlines()[-1]
        assert last == f"bitshared: error: cannot use the state directory {small_disk / 'state'}: Read-only file system"
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    daemon.restart()
    with daemon.client() as client:
        assert [lease.id for lease in client.all_leases()] == [kept.id]


def _try(call):
    try:
        return call()
    except BitshareError:
        return None


def test_an_expiry_that_cannot_be_recorded_waits_for_the_disk(make_daemon, small_disk: Path) -> None:
    daemon: Daemon = make_daemon(
        "--simulate", "1x16GiB", "--state-dir", str(small_disk / "state"), "--lease-ttl", "1"
    )  # fmt: skip
    with daemon.client() as client:
        filler = fill(small_disk)
        filler.unlink()  # room for one grant, then full again
        silent = client.request(LeaseRequest(fraction=0.25))  # nobody keeps it alive: expires in 1 s
        filler = fill(small_disk)
        wait_for(lambda: "store.unwritable" in daemon.log(), 10, "the expiry's write to fail")
        assert daemon.proc.poll() is None  # housekeeping goes on
        assert client.get(silent.id).state == pb.LEASE_STATE_ACTIVE  # not expired unrecorded
        filler.unlink()
        wait_for(lambda: client.get(silent.id).state == pb.LEASE_STATE_EXPIRED, 15, "the expiry, recorded")
