"""Keep a lease alive from the client side: heartbeats over the attach stream, events back.

Contact is any answer from the daemon: the event that answers each heartbeat, any other
event, or a reconnect that attaches again. The keeper reconnects when the stream breaks
(a daemon restart, say) and gives up only when the daemon says the lease ended, or when
it has had no contact for longer than the lease's TTL (by then the daemon has expired
the lease), however long the lease had been held before.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator

import grpc

from ..client.connection import Client
from ..errors import BitshareError
from ..protocol.v1 import bitshare_pb2 as pb

ENDED_STATES = {
    pb.LEASE_STATE_RELEASED,
    pb.LEASE_STATE_EXPIRED,
    pb.LEASE_STATE_REVOKED,
    pb.LEASE_STATE_CANCELLED,
    pb.LEASE_STATE_TIMED_OUT,
}


class LeaseKeeper:
    """Runs in a background thread; read :attr:`lease` and wait on :attr:`changed`."""

    def __init__(self, client: Client, lease: pb.Lease) -> None:
        self._source = client
        self.client = client.clone()  # a channel of its own, renewed after a failure
        # Queued requests live by the daemon's TTL, which may be shorter than the lease's own.
        self.server_ttl_s = client.info.lease_ttl_s or 30.0
        self.lease = lease
        self.lost_reason = ""  # set when the lease is gone without a word from the daemon
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._call: grpc.Future | None = None
        self.usage: Callable[[], float] = lambda: 0.0  # CPU seconds of the lease's processes
        # What the holder tells the daemon with each heartbeat: its processes and whether an agent runs.
        self.pids: list[int] = []
        self.agent = False
        self._wake = threading.Event()  # send a heartbeat now (the report changed)
        self._last_contact = time.monotonic()
        # Set once the daemon is seen answering heartbeats (a daemon older than that answers
        # only with changes); from then on a stream that stays silent past the TTL is given up.
        self._answers_heartbeats = False
        self.listeners: list[Callable[[pb.LeaseEvent], None]] = []  # called in the keeper thread
        self._thread = threading.Thread(target=self._run, name=f"bitshare-keeper-{lease.id}", daemon=True)

    @property
    def ttl_s(self) -> float:
        """How long the daemon keeps the lease (or the queued request) without a heartbeat."""
        if self.lease.state == pb.LEASE_STATE_ACTIVE:
            return self.lease.ttl_s or self.server_ttl_s
        return self.server_ttl_s

    @property
    def heartbeat_s(self) -> float:
        return max(0.05, min(self.ttl_s, self.server_ttl_s) / 3)

    @property
    def ended(self) -> bool:
        return self.lease.state in ENDED_STATES or bool(self.lost_reason)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            # Closing a channel under a call that has not finished can block; leave both to the
            # process's exit and say so, since it should not happen.
            sys.stderr.write(f"bitshare: warning: the keeper of lease {self.lease.id} did not stop\n")
            return
        # Drop the ended stream now, while gRPC's threads still run: left to the collector at
        # interpreter exit, its finaliser takes a lock that one of gRPC's daemon threads, frozen by
        # the exit, may hold, and the program never ends.
        self._call = None
        del call
        self.client.close()

    def report(self, pids: list[int] | None = None, agent: bool | None = None) -> None:
        """Change what the heartbeats report, and send one now."""
        if pids is not None:
            self.pids = list(pids)
        if agent is not None:
            self.agent = agent
        self._wake.set()

    def notify(self) -> None:
        """Wake whoever waits on this keeper (for changes made outside it, such as a command ending)."""
        with self.changed:
            self.changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    # ----- the thread --------------------------------------------------------------

    @property
    def silent_s(self) -> float:
        """Seconds since the daemon last answered."""
        return time.monotonic() - self._last_contact

    def _heartbeats(self) -> Iterator[pb.AttachRequest]:
        while True:
            self._wake.wait(self.heartbeat_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            call = self._call
            if self._answers_heartbeats and self.silent_s > self.ttl_s and call is not None:
                # The stream looks open but nothing answers (a network that drops everything):
                # end it, so that the loop below gives the lease up.
                call.cancel()
                return
            yield pb.AttachRequest(cpu_seconds=self.usage(), pids=self.pids, agent=self.agent)

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                self._call = self.client.attach(self.lease.id, self._heartbeats())
                if self._stop.is_set():  # stop() ran before the call existed, so it could not cancel it
                    self._call.cancel()
                first = True
                for event in self._call:
                    self._last_contact = time.monotonic()
                    if not first and event.kind == pb.LeaseEvent.KIND_SNAPSHOT:
                        self._answers_heartbeats = True
                    first = False
                    backoff = 0.05
                    self._update(event)
                    if event.lease.state in ENDED_STATES:
                        return
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                code = exc.code()
                if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                    self._lose(f"the daemon no longer knows lease {self.lease.id}: {exc.details()}")
                    return
            if self._stop.is_set():
                return
            if self.silent_s > self.ttl_s:
                self._lose(f"no contact with bitshared for {self.ttl_s:g}s; the lease has expired")
                return
            self._stop.wait(backoff)
            backoff = min(backoff * 2, max(0.2, self.heartbeat_s))
            self._renew_channel()

    def _renew_channel(self) -> None:
        """A fresh channel connects at once; a failed one may sit in gRPC's reconnect backoff."""
        try:
            fresh = self._source.clone()
        except BitshareError:
            return  # the daemon is still away; try again after the next backoff
        old, self.client = self.client, fresh
        old.close()

    def _update(self, event: pb.LeaseEvent) -> None:
        with self.changed:
            self.lease = event.lease
            self.changed.notify_all()
        for listener in self.listeners:
            listener(event)

    def _lose(self, reason: str) -> None:
        with self.changed:
            self.lost_reason = reason
            self.changed.notify_all()
