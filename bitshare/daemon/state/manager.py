"""The daemon's lease manager: the ledger, made durable and observable.

Every mutation runs on the event loop against the ledger, then waits for the
store to commit its changes, then tells the watchers. Replies leave only after
the commit (durable before acknowledged). The manager is the only door to the
ledger: what it hands out is a copy, which nothing changes under an ``await``.
A lease whose change is being committed is read (or retried, or changed again)
only once that commit has settled, so nobody is told of a change not on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from ... import log
from ...errors import WrongState
from ..ledger import Change, ChangeKind, Gpu, Lease, LeaseSpec, LeaseState, Ledger, Policy, Size
from .store import EventRecord, StateUnwritable, Store, StoreError

DAEMON = "bitshared"  # the actor of what the daemon does by itself (expiry, grants from the queue)
PROBE_EVERY_S = 2.0  # while the store cannot be written: how often a write is tried


class UpdateKind(Enum):
    """What a lease's watchers are told happened."""

    SNAPSHOT = "snapshot"
    QUEUE_MOVED = "queue_moved"
    GRANTED = "granted"
    RESIZED = "resized"
    ENDED = "ended"
    WARNING = "warning"
    REFUSED = "refused"  # the stream's own refusal of a holder's report


@dataclass(frozen=True)
class LeaseUpdate:
    """What a lease's watchers are told."""

    kind: UpdateKind
    lease: Lease
    message: str = ""
    queue_position: int = 0


def _detail(change: Change) -> str:
    """An event's text; a Slurm job's lease names its job, so the audit log can be read by job."""
    job = change.lease.slurm_job
    if not job:
        return change.detail
    return f"slurm job {job}" + (f": {change.detail}" if change.detail else "")


def _watched(kind: ChangeKind) -> UpdateKind | None:
    """The update a committed change gives the lease's watchers (None: they are not told)."""
    if kind.ends:
        return UpdateKind.ENDED
    if kind is ChangeKind.GRANTED:
        return UpdateKind.GRANTED
    if kind is ChangeKind.RESIZED:
        return UpdateKind.RESIZED
    return None


@dataclass(frozen=True)
class GpuView:
    """A GPU with the committed leases on it and what they hold (copies)."""

    gpu: Gpu
    granted_mib: int
    granted_compute_pct: int
    leases: tuple[Lease, ...]  # the active leases with a partition on it


class LeaseManager:
    """The ledger made durable and observable; the only thing that touches it."""

    @classmethod
    def from_store(cls, store: Store, gpus: Callable[[set[str]], list[Gpu]], policy: Policy) -> LeaseManager:
        """A manager over the ledger as the store has it. ``gpus`` makes this host's GPUs, given the
        uuids the store has drained; it is called again whenever the ledger goes back to the store."""

        def from_store() -> Ledger:
            ledger = Ledger(gpus(store.load_drained()), policy)
            ledger.restore(store.load_leases(), time.time())
            return ledger

        return cls(from_store(), store, rebuild=from_store)

    def __init__(
        self,
        ledger: Ledger,
        store: Store,
        clock: Callable[[], float] = time.time,
        rebuild: Callable[[], Ledger] | None = None,
    ) -> None:
        self._ledger = ledger
        self._rebuild = rebuild  # the ledger as the store has it (after a write failed)
        self.unwritable = ""  # why changes are refused ("" while the store can be written)
        self._next_probe = 0.0
        self.store = store
        self.clock = clock
        self._watchers: dict[str, set[asyncio.Queue[LeaseUpdate]]] = defaultdict(set)
        self._positions: dict[str, int] = {}
        self._changed: asyncio.Future[None] | None = None
        self._cpu_seen: dict[str, float] = {}
        # Lease id -> settles once the commit holding its latest change has succeeded or failed.
        self._in_flight: dict[str, asyncio.Future[None]] = {}
        self._recovery: asyncio.Future[None] | None = None  # going back to the store after a failed write
        self._committed = self._live_as_committed()  # lease id -> each live lease as last committed
        # Each GPU's (uuid, name): fixed for the daemon's life, read for every lease message.
        self.gpu_labels: dict[int, tuple[str, str]] = {i: (g.uuid, g.name) for i, g in ledger.gpus.items()}
        # Called with every batch of committed changes (enforcement acts on ended leases).
        self.listeners: list[Callable[[list[Change]], None]] = []

    # ----- reads ---------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def queue_position(self, lease_id: str) -> int:
        return self._ledger.queue_positions(self.now()).get(lease_id, 0)

    def queue_positions(self) -> dict[str, int]:
        return self._ledger.queue_positions(self.now())

    @property
    def version(self) -> int:
        return self._ledger.version

    @property
    def policy(self) -> Policy:
        return self._ledger.policy

    @property
    def gpu_count(self) -> int:
        return len(self._ledger.gpus)

    async def lease(self, lease_id: str) -> Lease:
        """The lease as committed: once a change of it in flight has settled (NotFound if none)."""
        await self._settled(lease_id)
        return self._ledger.get(lease_id).copy()

    def peek(self, lease_id: str) -> Lease:
        """The lease as the ledger has it now, commit or not (for the daemon's own checks)."""
        return self._ledger.get(lease_id).copy()

    # Listings show leases as committed: a lease whose change is in flight is shown as it was
    # before it (or not at all, if it is new), so nothing a failed commit takes back is ever seen.

    def live(self) -> list[Lease]:
        if not self._in_flight:
            return [lease.copy() for lease in self._ledger.live()]
        shown = {lease.id: lease for lease in self._ledger.live() if lease.id not in self._in_flight}
        for lease_id in self._in_flight:
            committed = self._committed.get(lease_id)
            if committed is not None:
                shown[lease_id] = committed
        return [lease.copy() for lease in sorted(shown.values(), key=lambda lease: lease.seq)]

    def recently_ended(self, limit: int) -> list[Lease]:
        ended = self._ledger.recently_ended(limit)
        return [lease.copy() for lease in ended if lease.id not in self._in_flight]

    def active(self) -> list[Lease]:
        return [lease for lease in self.live() if lease.state is LeaseState.ACTIVE]

    def queue(self) -> list[Lease]:
        """Queued requests as committed (like ``live()``), in the order they will be considered."""
        if not self._in_flight:
            return [lease.copy() for lease in self._ledger.queue(self.now())]
        queued = [lease for lease in self.live() if lease.state is LeaseState.QUEUED]
        return self._ledger.in_queue_order(queued, self.now())

    def gpu(self, index: int) -> Gpu:
        return replace(self._ledger.gpus[index])

    def gpus(self) -> list[GpuView]:
        """Each GPU with the committed leases on it, and what they hold."""
        active = self.active()
        views = []
        for gpu in self._ledger.gpus.values():
            on_it = tuple(lease for lease in active if gpu.index in lease.allocations)
            if self._in_flight:  # the ledger's totals count what is in flight: sum what is shown
                granted = sum(lease.allocations[gpu.index] for lease in on_it)
                compute = sum(lease.spec.compute_pct for lease in on_it)
            else:
                granted, compute = self._ledger.granted_mib(gpu.index), self._ledger.granted_compute(gpu.index)
            views.append(GpuView(replace(gpu), granted, compute, on_it))
        return views

    async def load_events(self, limit: int, lease_id: str = "") -> list[EventRecord]:
        return await asyncio.to_thread(self.store.load_events, limit, lease_id)

    def note_activity(self, lease_id: str, at: float) -> None:
        """The lease's work used its GPU at ``at`` (for idle reclaim; not written)."""
        self._ledger.note_activity(lease_id, at)

    async def wait_changed(self, since: int, timeout: float) -> None:
        """Return once the ledger's version is past ``since``, or after timeout."""
        if self._ledger.version != since:
            return
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._changed), timeout)

    # ----- mutations -----------------------------------------------------------

    # ``actor`` is who asked ("user:alice", "token:ops"): the audit log records it on the event of
    # the lease acted on; what follows from it (a queued request granted) is the daemon's doing.

    async def submit(
        self,
        lease_id: str,
        owner: str,
        spec: LeaseSpec,
        mps_uid: int | None = None,
        request_id: str = "",
        actor: str = "",
        **details: str,
    ) -> Lease:
        """Grant or queue a request. A retry (the owner's request id seen before) gets the lease
        the first attempt made, once that attempt's commit holds it; if that commit failed, the
        retry is a fresh attempt (refused while the store cannot be written)."""
        if request_id:
            existing = await self._settled_request(owner, request_id)
            if existing is not None:
                if existing.slurm_job != details.get("slurm_job", ""):
                    raise WrongState(f"request id {request_id} was used for lease {existing.id}, not for this job")
                return existing
        self._writable()
        lease = self._ledger.submit(
            lease_id, owner, spec, self.now(), mps_uid=mps_uid, request_id=request_id, **details
        ).copy()
        await self._persist(acted=(lease_id, actor or owner))
        return lease

    async def release(self, lease_id: str, actor: str = DAEMON) -> Lease:
        """Idempotent: a release retried while the first is being committed gets its outcome."""
        await self._settled(lease_id)
        self._writable()
        lease = self._ledger.release(lease_id, self.now()).copy()
        await self._persist(acted=(lease_id, actor))
        return lease

    async def revoke(self, lease_id: str, reason: str, actor: str = DAEMON) -> Lease:
        await self._settled(lease_id)
        self._writable()
        lease = self._ledger.revoke(lease_id, reason, self.now()).copy()
        await self._persist(acted=(lease_id, actor))
        return lease

    async def resize(self, lease_id: str, size: Size, actor: str = DAEMON) -> Lease:
        await self._settled(lease_id)
        self._writable()
        lease = self._ledger.resize(lease_id, size, self.now()).copy()
        await self._persist(acted=(lease_id, actor))
        return lease

    async def set_priority(self, lease_id: str, priority: int, actor: str = DAEMON) -> Lease:
        await self._settled(lease_id)
        self._writable()
        lease = self._ledger.set_priority(lease_id, priority, self.now()).copy()
        await self._persist(acted=(lease_id, actor))
        return lease

    async def drain(self, gpu_index: int, drained: bool, actor: str = DAEMON) -> Gpu:
        # Every drain writes its own event: a retry is acknowledged only once that is on disk.
        self._writable()
        gpu = replace(self._ledger.drain(gpu_index, drained, self.now()))
        kind = "drained" if drained else "undrained"
        log.event(f"gpu.{kind}", gpu=gpu_index, actor=actor)
        event = EventRecord(self.now(), kind, "", f"GPU {gpu_index}", actor)
        await self._persist(extra_events=[event], drained={gpu.uuid: drained})
        return gpu

    async def warn(self, lease_id: str, kind: str, detail: str) -> None:
        """Record an enforcement event for the lease and tell its holder (``kind`` names it in the log)."""
        lease = self._ledger.get(lease_id).copy()
        log.warning(f"lease.{kind}", lease=lease_id, owner=lease.owner, detail=detail)
        # The holder is told even when the event cannot be recorded: already, or by this write.
        if not self.unwritable:
            with contextlib.suppress(StateUnwritable):
                await self._persist(extra_events=[EventRecord(self.now(), kind, lease_id, detail, DAEMON)])
        self.tell(lease_id, LeaseUpdate(UpdateKind.WARNING, lease, detail))

    def tell(self, lease_id: str, update: LeaseUpdate) -> None:
        """Send an update to the lease's watchers only (nothing is recorded)."""
        for queue in self._watchers.get(lease_id, ()):
            queue.put_nowait(update)

    def heartbeat(self, lease_id: str, cpu_seconds: float = 0.0) -> Lease:
        """Heartbeats are not written: a restarted daemon gives every holder a fresh TTL.

        ``cpu_seconds`` is the holder's running total; a rise is activity for idle reclaim.
        """
        now = self.now()
        lease = self._ledger.heartbeat(lease_id, now)
        if cpu_seconds > self._cpu_seen.get(lease_id, 0.0):
            self._ledger.note_activity(lease_id, now)
        if cpu_seconds:
            self._cpu_seen[lease_id] = cpu_seconds
        return lease.copy()

    async def tick(self) -> None:
        """Expire, time out and move the queue; while the store cannot be written, only try it
        now and then (nothing expires meanwhile: an expiry that is not recorded would come back)."""
        if self.unwritable:
            await self._probe()
            return
        self._ledger.tick(self.now())
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
        changes = self._ledger.take_changes()
        events = list(extra_events or [])
        if not changes and not events and not drained:
            return
        latest: dict[str, Lease] = {}
        for change in changes:
            latest[change.lease.id] = change.lease
            actor = acted[1] if change.lease.id == acted[0] else DAEMON
            events.append(EventRecord(self.now(), change.kind.value, change.lease.id, _detail(change), actor))
        settled = asyncio.get_running_loop().create_future()
        for lease_id in latest:
            self._in_flight[lease_id] = settled
        try:
            await self.store.commit(list(latest.values()), events, drained)
            self._note_committed(latest)
        except StoreError as exc:
            await self._refuse_changes(exc)
            raise StateUnwritable(self.unwritable) from None
        finally:
            # Only now (committed, or the ledger back to what the store holds) may they be read.
            for lease_id in latest:
                if self._in_flight.get(lease_id) is settled:
                    del self._in_flight[lease_id]
            settled.set_result(None)
        for change in changes:
            self._log(change)
            if change.lease.state.ended:
                self._cpu_seen.pop(change.lease.id, None)
        self._publish(changes)

    def _writable(self) -> None:
        if self.unwritable:
            raise StateUnwritable(self.unwritable)

    def _live_as_committed(self) -> dict[str, Lease]:
        return {lease.id: lease.copy() for lease in self._ledger.live()}

    def _note_committed(self, leases: dict[str, Lease]) -> None:
        for lease_id, lease in leases.items():
            if lease.state.ended:
                self._committed.pop(lease_id, None)
            else:
                self._committed[lease_id] = lease

    async def _settled(self, lease_id: str) -> None:
        """Return once no commit of a change of the lease is in flight."""
        while (pending := self._in_flight.get(lease_id)) is not None:
            await asyncio.shield(pending)  # never fails: it settles after the commit either way

    async def _settled_request(self, owner: str, request_id: str) -> Lease | None:
        """The lease an earlier attempt of the request made, as committed (None: none holds it)."""
        while True:
            lease = self._ledger.find_request(owner, request_id)
            if lease is None:
                return None
            if lease.id not in self._in_flight:
                return lease.copy()
            await self._settled(lease.id)  # then look again: a failed commit took it away

    async def _refuse_changes(self, error: StoreError) -> None:
        """A write failed: refuse every change from now on, and go back to what the store holds,
        so that nothing unrecorded is ever shown or acted on. Every failed write of the batch
        waits for that: none of their leases is read before the ledger is the store's again."""
        if not self.unwritable:
            self.unwritable = f"bitshared cannot write its state ({error}); it refuses changes until it can"
            log.error("store.unwritable", error=error)
            self._recovery = asyncio.ensure_future(self._go_back_to_store())
        if self._recovery is not None:
            await asyncio.shield(self._recovery)

    async def _go_back_to_store(self) -> None:
        with contextlib.suppress(StoreError):  # the writes queued behind the failed one settle first
            await self.store.commit([], [])
        if self._rebuild is not None:
            self._ledger = self._rebuild()
            self._committed = self._live_as_committed()
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
        log.event(f"lease.{change.kind.value}", lease=lease.id, owner=lease.owner, detail=_detail(change))

    def _publish(self, changes: list[Change]) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        if changes:
            for listener in self.listeners:
                listener(changes)
        for change in changes:
            kind = _watched(change.kind)
            if kind is None:
                continue
            for queue in self._watchers.get(change.lease.id, ()):
                queue.put_nowait(LeaseUpdate(kind, change.lease, change.detail))
        self._publish_positions()

    def _publish_positions(self) -> None:
        if not self._watchers:
            return
        positions = self._ledger.queue_positions(self.now())
        for lease_id, watchers in self._watchers.items():
            position = positions.get(lease_id)
            if position is None or self._positions.get(lease_id) == position:
                continue
            self._positions[lease_id] = position
            lease = self._ledger.get(lease_id)
            for queue in watchers:
                queue.put_nowait(LeaseUpdate(UpdateKind.QUEUE_MOVED, lease.copy(), "", position))
