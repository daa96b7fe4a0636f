"""The daemon's lease manager: the ledger, made durable and observable.

Every mutation runs on the event loop against the ledger, then waits for the
store to commit its changes, then tells the watchers. Replies leave only after
the commit (durable before acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from ... import log
from ..ledger import Change, Gpu, Lease, LeaseSpec, Ledger, Size
from .store import EventRecord, StateUnwritable, Store, StoreError

DAEMON = "bitshared"  # the actor of what the daemon does by itself (expiry, grants from the queue)
PROBE_EVERY_S = 2.0  # while the store cannot be written: how often a write is tried


@dataclass(frozen=True)
class LeaseUpdate:
    """What a lease's watchers are told."""

    kind: str  # snapshot, queue_moved, granted, resized, ended, warning, refused
    lease: Lease
    message: str = ""
    queue_position: int = 0


_WATCH_KIND = {
    "granted": "granted",
    "resized": "resized",
    "released": "ended",
    "expired": "ended",
    "revoked": "ended",
    "cancelled": "ended",
    "timed_out": "ended",
}


class LeaseManager:
    def __init__(
        self,
        ledger: Ledger,
        store: Store,
        clock: Callable[[], float] = time.time,
        rebuild: Callable[[], Ledger] | None = None,
    ) -> None:
        self.ledger = ledger
        self._rebuild = rebuild  # the ledger as the store has it (after a write failed)
        self.unwritable = ""  # why changes are refused ("" while the store can be written)
        self._next_probe = 0.0
        self.store = store
        self.clock = clock
        self._watchers: dict[str, set[asyncio.Queue[LeaseUpdate]]] = defaultdict(set)
        self._positions: dict[str, int] = {}
        self._changed: asyncio.Future[None] | None = None
        self._cpu_seen: dict[str, float] = {}
        # Called with every batch of committed changes (enforcement acts on ended leases).
        self.listeners: list[Callable[[list[Change]], None]] = []

    # ----- reads ---------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def queue_position(self, lease_id: str) -> int:
        return self.ledger.queue_positions(self.now()).get(lease_id, 0)

    async def wait_changed(self, since: int, timeout: float) -> None:
        """Return once the ledger's version is past ``since``, or after timeout."""
        if self.ledger.version != since:
            return
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._changed), timeout)

    # ----- mutations -----------------------------------------------------------

    # ``actor`` is who asked ("user:alice", "token:ops"): the audit log records it on the event of
    # the lease acted on; what follows from it (a queued request granted) is the daemon's doing.

    async def submit(
        self, lease_id: str, owner: str, spec: LeaseSpec, mps_uid: int | None = None, **details: str
    ) -> Lease:
        self._writable()
        lease = self.ledger.submit(lease_id, owner, spec, self.now(), mps_uid=mps_uid, **details)
        await self._persist(acted=(lease_id, owner))
        return lease

    async def release(self, lease_id: str, actor: str = DAEMON) -> Lease:
        self._writable()
        lease = self.ledger.release(lease_id, self.now())
        await self._persist(acted=(lease_id, actor))
        return lease

    async def revoke(self, lease_id: str, reason: str, actor: str = DAEMON) -> Lease:
        self._writable()
        lease = self.ledger.revoke(lease_id, reason, self.now())
        await self._persist(acted=(lease_id, actor))
        return lease

    async def resize(self, lease_id: str, size: Size, actor: str = DAEMON) -> Lease:
        self._writable()
        lease = self.ledger.resize(lease_id, size, self.now())
        await self._persist(acted=(lease_id, actor))
        return lease

    async def set_priority(self, lease_id: str, priority: int, actor: str = DAEMON) -> Lease:
        self._writable()
        lease = self.ledger.set_priority(lease_id, priority, self.now())
        await self._persist(acted=(lease_id, actor))
        return lease

    async def drain(self, gpu_index: int, drained: bool, actor: str = DAEMON) -> Gpu:
        self._writable()
        gpu = self.ledger.drain(gpu_index, drained, self.now())
        kind = "drained" if drained else "undrained"
        log.event(f"gpu.{kind}", gpu=gpu_index, actor=actor)
        event = EventRecord(self.now(), kind, "", f"GPU {gpu_index}", actor)
        await self._persist(extra_events=[event], drained={gpu.uuid: drained})
        return gpu

    async def warn(self, lease_id: str, kind: str, detail: str) -> None:
        """Record an enforcement event for the lease and tell its holder (``kind`` names it in the log)."""
        lease = self.ledger.get(lease_id)
        log.warning(f"lease.{kind}", lease=lease_id, owner=lease.owner, detail=detail)
        if not self.unwritable:  # the holder is told even when the event cannot be recorded
            await self._persist(extra_events=[EventRecord(self.now(), kind, lease_id, detail, DAEMON)])
        self.tell(lease_id, LeaseUpdate("warning", lease.copy(), detail))

    def tell(self, lease_id: str, update: LeaseUpdate) -> None:
        """Send an update to the lease's watchers only (nothing is recorded)."""
        for queue in self._watchers.get(lease_id, ()):
            queue.put_nowait(update)

    def heartbeat(self, lease_id: str, cpu_seconds: float = 0.0) -> Lease:
        """Heartbeats are not written: a restarted daemon gives every holder a fresh TTL.

        ``cpu_seconds`` is the holder's running total; a rise is activity for idle reclaim.
        """
        now = self.now()
        lease = self.ledger.heartbeat(lease_id, now)
        if cpu_seconds > self._cpu_seen.get(lease_id, 0.0):
            self.ledger.note_activity(lease_id, now)
        if cpu_seconds:
            self._cpu_seen[lease_id] = cpu_seconds
        return lease

    async def tick(self) -> None:
        """Expire, time out and move the queue; while the store cannot be written, only try it
        now and then (nothing expires meanwhile: an expiry that is not recorded would come back)."""
        if self.unwritable:
            await self._probe()
            return
        self.ledger.tick(self.now())
        await self._persist()

    # ----- watchers ------------------------------------------------------------

    def watch(self, lease_id: str) -> asyncio.Queue[LeaseUpdate]:
        queue: asyncio.Queue[LeaseUpdate] = asyncio.Queue()
        self._watchers[lease_id].add(queue)
        return queue

    def unwatch(self, lease_id: str, queue: asyncio.Queue[LeaseUpdate]) -> None:
        watchers = self._watchers.get(lease_id)
        if watchers is not None:
            watchers.discard(queue)
            if not watchers:
                del self._watchers[lease_id]
                self._positions.pop(lease_id, None)

    # ----- internals -----------------------------------------------------------

    async def _persist(
        self,
        extra_events: list[EventRecord] | None = None,
        drained: dict[str, bool] | None = None,
        acted: tuple[str, str] = ("", DAEMON),
    ) -> None:
        changes = self.ledger.take_changes()
        events = list(extra_events or [])
        if not changes and not events and not drained:
            return
        latest: dict[str, Lease] = {}
        for change in changes:
            latest[change.lease.id] = change.lease
            actor = acted[1] if change.lease.id == acted[0] else DAEMON
            events.append(EventRecord(self.now(), change.kind, change.lease.id, change.detail, actor))
        try:
            await self.store.commit(list(latest.values()), events, drained)
        except StoreError as exc:
            await self._refuse_changes(exc)
            raise StateUnwritable(self.unwritable) from None
        for change in changes:
            self._log(change)
            if change.lease.state.ended:
                self._cpu_seen.pop(change.lease.id, None)
        self._publish(changes)

    def _writable(self) -> None:
        if self.unwritable:
            raise StateUnwritable(self.unwritable)

    async def _refuse_changes(self, error: StoreError) -> None:
        """A write failed: refuse every change from now on, and go back to what the store holds,
        so that nothing unrecorded is ever shown or acted on."""
        if self.unwritable:
            return  # already done by the first failed write of this batch
        self.unwritable = f"bitshared cannot write its state ({error}); it refuses changes until it can"
        log.error("store.unwritable", error=error)
        with contextlib.suppress(StoreError):  # the writes queued behind the failed one settle first
            await self.store.commit([], [])
        if self._rebuild is not None:
            self.ledger = self._rebuild()
        self._next_probe = self.now() + PROBE_EVERY_S

    async def _probe(self) -> None:
        """Try a real write (an event); when it succeeds, changes are taken again."""
        if self.now() < self._next_probe:
            return
        self._next_probe = self.now() + PROBE_EVERY_S
        event = EventRecord(self.now(), "store_writable", "", "the state store can be written again", DAEMON)
        try:
            await self.store.commit([], [event])
        except StoreError:
            return
        log.event("store.writable")
        self.unwritable = ""

    def _log(self, change: Change) -> None:
        lease = change.lease
        log.event(f"lease.{change.kind}", lease=lease.id, owner=lease.owner, detail=change.detail)

    def _publish(self, changes: list[Change]) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        if changes:
            for listener in self.listeners:
                listener(changes)
        for change in changes:
            kind = _WATCH_KIND.get(change.kind)
            if kind is None:
                continue
            for queue in self._watchers.get(change.lease.id, ()):
                queue.put_nowait(LeaseUpdate(kind, change.lease, change.detail))
        self._publish_positions()

    def _publish_positions(self) -> None:
        if not self._watchers:
            return
        positions = self.ledger.queue_positions(self.now())
        for lease_id, watchers in self._watchers.items():
            position = positions.get(lease_id)
            if position is None or self._positions.get(lease_id) == position:
                continue
            self._positions[lease_id] = position
            lease = self.ledger.get(lease_id)
            for queue in watchers:
                queue.put_nowait(LeaseUpdate("queue_moved", lease.copy(), "", position))
