"""The lease manager over a real store whose commits the test holds and fails at will.

Durable before acknowledged, retries included: while a change's commit is in flight nobody is
told of it, and a retry of the same request waits for that commit and gets its outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bitshare.daemon.state.manager import LeaseManager, UpdateKind
from bitshare.daemon.state.model import Gpu, LeaseSpec, LeaseState, Policy, Size
from bitshare.daemon.state.store import EventRecord, StateUnwritable, Store, StoreError


class HeldStore(Store):
    """A real store whose commits wait for ``release()``; while ``failing``, they fail instead."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.failing = False
        self.held: asyncio.Event | None = None

    def hold(self) -> None:
        self.held = asyncio.Event()

    def release(self) -> None:
        assert self.held is not None
        self.held.set()

    def commit(self, leases, events: list[EventRecord], drained=None) -> asyncio.Future[None]:
        held, failing = self.held, self.failing

        async def later() -> None:
            if held is not None:
                await held.wait()
            if failing:
                raise StoreError("state store write failed: database or disk is full")
            await Store.commit(self, leases, events, drained)

        return asyncio.ensure_future(later())


def quarter() -> LeaseSpec:
    return LeaseSpec(size=Size(fraction=0.25), ttl_s=600)


def with_manager(tmp_path: Path, body: Callable[[LeaseManager, HeldStore], Awaitable[None]]) -> None:
    store = HeldStore(tmp_path / "state")

    def gpus(drained: set[str]) -> list[Gpu]:
        return [Gpu(0, "GPU-0", "Test GPU", 16384, 0, drained="GPU-0" in drained)]

    async def main() -> None:
        store.start()
        try:
            await body(LeaseManager.from_store(store, gpus, Policy()), store)
        finally:
            store.close()

    asyncio.run(main())


def test_a_retry_during_a_commit_that_fails_is_not_told_granted(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        store.hold()
        store.failing = True
        first = asyncio.ensure_future(manager.submit("a1", "alice", quarter(), request_id="r1"))
        await asyncio.sleep(0)  # the first attempt's commit is in flight
        retries = [
            asyncio.ensure_future(manager.submit(f"b{i}", "alice", quarter(), request_id="r1")) for i in range(3)
        ]
        await asyncio.sleep(0)
        assert not any(retry.done() for retry in retries)  # none answered before the commit settles
        store.release()
        for attempt in [first, *retries]:
            with pytest.raises(StateUnwritable, match="cannot write its state"):
                await attempt
        assert manager.live() == []
        assert store.load_leases() == []

    with_manager(tmp_path, body)


def test_a_retry_during_a_commit_that_holds_gets_the_same_lease(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        store.hold()
        first = asyncio.ensure_future(manager.submit("a1", "alice", quarter(), request_id="r1"))
        await asyncio.sleep(0)
        retry = asyncio.ensure_future(manager.submit("b1", "alice", quarter(), request_id="r1"))
        await asyncio.sleep(0)
        assert not retry.done()
        store.release()
        granted, again = await first, await retry
        assert granted.id == again.id == "a1" and again.state is LeaseState.ACTIVE
        assert [lease.id for lease in store.load_leases()] == ["a1"]

    with_manager(tmp_path, body)


def test_a_fresh_attempt_is_taken_once_the_store_is_writable_again(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        store.failing = True
        with pytest.raises(StateUnwritable):
            await manager.submit("a1", "alice", quarter(), request_id="r1")
        store.failing = False
        manager.clock = lambda: 1e12  # the next probe is due
        await manager.tick()
        lease = await manager.submit("a2", "alice", quarter(), request_id="r1")
        assert lease.id == "a2" and [stored.id for stored in store.load_leases()] == ["a2"]

    with_manager(tmp_path, body)


def test_a_retried_release_waits_for_the_first_release_to_be_recorded(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        lease = await manager.submit("a1", "alice", quarter(), request_id="r1")
        store.hold()
        store.failing = True
        first = asyncio.ensure_future(manager.release(lease.id, "user:alice"))
        await asyncio.sleep(0)
        retry = asyncio.ensure_future(manager.release(lease.id, "user:alice"))
        read = asyncio.ensure_future(manager.lease(lease.id))
        await asyncio.sleep(0)
        assert not retry.done() and not read.done()
        store.release()
        for attempt in (first, retry):
            with pytest.raises(StateUnwritable):
                await attempt
        assert (await read).state is LeaseState.ACTIVE  # what the store holds
        assert [stored.state for stored in store.load_leases()] == [LeaseState.ACTIVE]

    with_manager(tmp_path, body)


def test_what_the_manager_hands_out_does_not_change_under_it(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        granted = await manager.submit("a1", "alice", quarter())
        seen = await manager.lease("a1")
        await manager.release("a1")
        assert granted.state is LeaseState.ACTIVE and seen.state is LeaseState.ACTIVE
        assert (await manager.lease("a1")).state is LeaseState.RELEASED

    with_manager(tmp_path, body)


def test_a_retried_drain_waits_for_the_first_drain_to_be_recorded(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        store.hold()
        store.failing = True
        first = asyncio.ensure_future(manager.drain(0, True, "user:root"))
        await asyncio.sleep(0)
        retry = asyncio.ensure_future(manager.drain(0, True, "user:root"))
        await asyncio.sleep(0)
        assert not retry.done()
        store.release()
        for attempt in (first, retry):
            with pytest.raises(StateUnwritable):
                await attempt
        assert not manager.gpu(0).drained and store.load_drained() == set()

    with_manager(tmp_path, body)


def test_listings_show_no_change_whose_commit_is_in_flight(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        kept = await manager.submit("a1", "alice", quarter())
        store.hold()
        store.failing = True
        new = asyncio.ensure_future(manager.submit("a2", "alice", quarter()))
        release = asyncio.ensure_future(manager.release(kept.id))
        await asyncio.sleep(0)
        assert [(lease.id, lease.state) for lease in manager.live()] == [("a1", LeaseState.ACTIVE)]
        assert [lease.id for lease in manager.active()] == ["a1"]
        assert manager.recently_ended(10) == []
        [view] = manager.gpus()
        assert view.granted_mib == 4096 and [lease.id for lease in view.leases] == ["a1"]
        store.release()
        for attempt in (new, release):
            with pytest.raises(StateUnwritable):
                await attempt
        assert [(lease.id, lease.state) for lease in manager.live()] == [("a1", LeaseState.ACTIVE)]

    with_manager(tmp_path, body)


def test_listings_show_a_change_once_its_commit_holds(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        kept = await manager.submit("a1", "alice", quarter())
        store.hold()
        release = asyncio.ensure_future(manager.release(kept.id))
        await asyncio.sleep(0)
        assert [lease.state for lease in manager.live()] == [LeaseState.ACTIVE]
        store.release()
        await release
        assert manager.live() == [] and [lease.state for lease in manager.recently_ended(10)] == [LeaseState.RELEASED]
        assert manager.gpus()[0].granted_mib == 0

    with_manager(tmp_path, body)


def test_a_warning_whose_event_cannot_be_recorded_still_reaches_the_holder(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        lease = await manager.submit("a1", "alice", quarter())
        updates = manager.watch(lease.id)
        store.failing = True  # this warning's own write is the one that fails
        await manager.warn(lease.id, "over_limit", "uses 5000 MiB of 4096 MiB")
        assert manager.unwritable
        update = updates.get_nowait()
        assert update.kind is UpdateKind.WARNING and update.message == "uses 5000 MiB of 4096 MiB"

    with_manager(tmp_path, body)


def test_the_queue_listing_shows_queued_leases_as_committed(tmp_path: Path) -> None:
    async def body(manager: LeaseManager, store: HeldStore) -> None:
        whole = LeaseSpec(size=Size(fraction=1.0), ttl_s=600)
        held = await manager.submit("a1", "alice", whole)
        waiting = await manager.submit("q1", "bob", whole)
        assert [lease.id for lease in manager.queue()] == ["q1"]
        store.hold()
        store.failing = True
        reprioritised = asyncio.ensure_future(manager.set_priority(waiting.id, 5))
        await asyncio.sleep(0)
        assert [(lease.id, lease.priority) for lease in manager.queue()] == [("q1", 0)]
        store.release()
        with pytest.raises(StateUnwritable):
            await reprioritised
        store.failing = False
        store.held = None
        manager.unwritable = ""  # writable again, as a probe would find it
        store.hold()
        store.failing = True
        released = asyncio.ensure_future(manager.release(held.id))  # the grant of q1 is in flight
        await asyncio.sleep(0)
        queued = [(lease.id, lease.state) for lease in manager.live() if lease.state is LeaseState.QUEUED]
        assert [(lease.id, lease.state) for lease in manager.queue()] == queued == [("q1", LeaseState.QUEUED)]
        store.release()
        with pytest.raises(StateUnwritable):
            await released
        assert [lease.id for lease in manager.queue()] == ["q1"]

    with_manager(tmp_path, body)
