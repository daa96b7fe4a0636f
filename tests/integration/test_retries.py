"""Retries are durable before acknowledged too: a RequestLease retried (the same request id) while
its first attempt's commit is in flight is answered only once a commit holds the lease, with that
lease; when the commit fails, with the refusal. A restarted daemon has what it acknowledged.

The commit is held in flight for seconds by a real lock: another connection holds SQLite's write
lock on the daemon's state, so the daemon's transaction waits (its busy timeout: 5 s) and then
fails, or goes through once the lock is let go. Every attempt is sent while it waits."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc

from bitshare.client.connection import LeaseRequest
from bitshare.errors import BitshareError
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, wait_for

ATTEMPTS = 32  # the first attempt and its retries, all sent at once


@contextlib.contextmanager
def write_lock(state_dir: Path) -> Iterator[None]:
    """Hold SQLite's write lock on the daemon's state: its commits wait, then fail."""
    conn = sqlite3.connect(state_dir / "state.db", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def send_at_once(client, request_id: str) -> list[grpc.Future]:
    message = LeaseRequest(fraction=0.25, ttl_s=600, request_id=request_id).to_pb()
    return [client.leases.RequestLease.future(message, metadata=client.metadata, timeout=30) for _ in range(ATTEMPTS)]


def answer(call: grpc.Future) -> pb.Lease | grpc.StatusCode:
    try:
        return call.result()
    except grpc.RpcError as exc:
        return exc.code()


def none_answered_within(calls: list[grpc.Future], seconds: float) -> bool:
    """True if no call is answered within ``seconds`` (the commit is held far longer than that)."""
    answered = threading.Event()
    for call in calls:
        call.add_done_callback(lambda _: answered.set())
    return not answered.wait(seconds)


def test_retries_of_a_request_whose_commit_fails_are_never_told_granted(make_daemon, tmp_path: Path) -> None:
    state = tmp_path / "state"
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--state-dir", str(state))
    request_id = uuid.uuid4().hex
    with daemon.client() as client:
        kept = client.request(LeaseRequest(fraction=0.25, ttl_s=600))
        with write_lock(state):
            calls = send_at_once(client, request_id)
            assert [lease.id for lease in client.all_leases()] == [kept.id]  # nothing uncommitted is listed
            answers = [answer(call) for call in calls]  # the commit fails after 5 s of waiting
        granted = [a.id for a in answers if isinstance(a, pb.Lease)]
        assert granted == [], f"{len(granted)} of {ATTEMPTS} attempts were told of a lease no commit holds"
        assert set(answers) == {grpc.StatusCode.UNAVAILABLE}
        assert [lease.id for lease in client.all_leases()] == [kept.id]
        # The store can be written again: the same request id is a fresh attempt, granted once.
        later = wait_for(lambda: _granted(client, request_id), 15, "a grant once the store can be written")
        again = [answer(call) for call in send_at_once(client, request_id)]
        assert {a.id if isinstance(a, pb.Lease) else a for a in again} == {later.id}
    daemon.kill9()
    daemon.restart()  # exactly what was acknowledged
    with daemon.client() as client:
        assert {lease.id for lease in client.all_leases()} == {kept.id, later.id}
        assert client.get(later.id).request_id == request_id


def test_retries_while_the_first_commit_waits_get_its_lease_once_it_holds(make_daemon, tmp_path: Path) -> None:
    state = tmp_path / "state"
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--state-dir", str(state))
    request_id = uuid.uuid4().hex
    with daemon.client() as client:
        client.server_info()
        with write_lock(state):
            calls = send_at_once(client, request_id)
            assert none_answered_within(calls, 1.0), "a retry was answered before any commit held its lease"
            assert client.all_leases() == []  # nothing uncommitted is listed
        answers = [answer(call) for call in calls]  # the lock is gone: the waiting commit goes through
        assert {a.id if isinstance(a, pb.Lease) else a for a in answers} == {answers[0].id}
        assert {a.state for a in answers} == {pb.LEASE_STATE_ACTIVE}
    daemon.kill9()
    daemon.restart()
    with daemon.client() as client:
        assert [lease.id for lease in client.all_leases()] == [answers[0].id]


def _granted(client, request_id: str) -> pb.Lease | None:
    try:
        return client.request(LeaseRequest(fraction=0.25, ttl_s=600, request_id=request_id))
    except BitshareError:
        return None
