"""The lease keeper against a real daemon: it stops cleanly however early it is stopped."""

from __future__ import annotations

from bitshare.client.connection import LeaseRequest
from bitshare.holder.keeper import LeaseKeeper
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, wait_for


def test_a_keeper_stopped_at_once_ends_its_thread(daemon: Daemon) -> None:
    with daemon.client() as client:
        for _ in range(20):  # stop() may come before or after the stream exists
            lease = client.request(LeaseRequest(memory_mib=64))
            keeper = LeaseKeeper(client, lease).start()
            keeper.stop()
            assert not keeper._thread.is_alive()
            client.release(lease.id)


def test_a_keeper_sees_its_lease_revoked(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(memory_mib=64))
        keeper = LeaseKeeper(client, lease).start()
        try:
            client.revoke(lease.id, "test")
            assert keeper.wait(lambda: keeper.ended, 10)
            assert keeper.lease.state == pb.LEASE_STATE_REVOKED and keeper.lease.end_reason == "test"
            wait_for(lambda: not keeper._thread.is_alive(), 10, "the keeper thread to end")
        finally:
            keeper.stop()
