"""Example-based tests of the lease ledger (bitshare.daemon.ledger).

The ledger is pure logic: time is passed in as ``now``, so the tests drive the
clock by hand and never sleep.
"""

from __future__ import annotations

import pytest

from bitshare.daemon.ledger import (
    ENDED_KEPT,
    Change,
    Gpu,
    GpuFilter,
    Lease,
    LeaseSpec,
    LeaseState,
    Ledger,
    Policy,
    Size,
)
from bitshare.errors import REFUSALS, BitshareError, NoLease, NotFound, Unsatisfiable, UsageError, WrongState

T0 = 1000.0


# ----- helpers -------------------------------------------------------------------


def gpu(index: int, total: int = 1000, reserved: int = 0, name: str = "Test GPU") -> Gpu:
    return Gpu(index=index, uuid=f"GPU-{index}", name=name, total_mib=total, reserved_mib=reserved)


def frac(f: float, **kw) -> LeaseSpec:
    return LeaseSpec(size=Size(fraction=f), **kw)


def mib(m: int, **kw) -> LeaseSpec:
    return LeaseSpec(size=Size(memory_mib=m), **kw)


def make(*gpus: Gpu, **policy) -> Ledger:
    if not gpus:
        gpus = (gpu(0),)
    return Ledger(list(gpus), Policy(**policy))


def snapshot(ledger: Ledger) -> tuple:
    """Everything observable about the live leases, by value."""
    return (
        ledger.version,
        [(x.id, x.state, dict(x.allocations), x.priority, x.expires_at, x.wait_deadline, x.seq) for x in ledger.live()],
        {i: (g.drained, ledger.granted_mib(i)) for i, g in ledger.gpus.items()},
    )


def kinds(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.lease.id, c.kind) for c in changes]


# ----- placement -----------------------------------------------------------------


def test_grant_on_empty_gpu_is_active_with_allocation():
    ledger = make(gpu(0, 1000))
    lease = ledger.submit("a", "alice", mib(300), T0)
    assert lease.state is LeaseState.ACTIVE
    assert lease.allocations == {0: 300}
    assert lease.granted_at == T0
    assert ledger.granted_mib(0) == 300
    assert ledger.free_mib(0) == 700
    assert [x.id for x in ledger.active()] == ["a"]
    ledger.check_invariants()


def test_placement_packs_onto_fullest_gpu_that_fits():
    ledger = make(gpu(0, 1000), gpu(1, 1000), gpu(2, 1000))
    first = ledger.submit("a", "u", mib(600), T0)
    (first_gpu,) = first.allocations
    # The next small one goes onto the partly used GPU, leaving the others whole.
    second = ledger.submit("b", "u", mib(300), T0)
    assert second.allocations == {first_gpu: 300}
    # One that does not fit there anymore goes elsewhere.
    third = ledger.submit("c", "u", mib(200), T0)
    assert first_gpu not in third.allocations
    # And a further small one packs onto the GPU used by the third (fuller than an empty one).
    (third_gpu,) = third.allocations
    fourth = ledger.submit("d", "u", mib(100), T0)
    assert fourth.allocations == {first_gpu: 100}  # exactly fills GPU of the first (100 left)
    fifth = ledger.submit("e", "u", mib(100), T0)
    assert fifth.allocations == {third_gpu: 100}
    untouched = {0, 1, 2} - {first_gpu, third_gpu}
    assert len(untouched) == 1
    assert ledger.free_mib(untouched.pop()) == 1000
    ledger.check_invariants()


def test_best_fit_prefers_least_leftover_across_gpu_sizes():
    ledger = make(gpu(0, 4000), gpu(1, 1000), gpu(2, 2000))
    # 900 MiB: leftover would be 3100, 100, 1100 -> GPU 1.
    assert ledger.submit("a", "u", mib(900), T0).allocations == {1: 900}
    # 1500 MiB: GPU 1 cannot; leftovers 2500 (GPU 0) and 500 (GPU 2) -> GPU 2.
    assert ledger.submit("b", "u", mib(1500), T0).allocations == {2: 1500}


def test_multi_gpu_request_takes_distinct_gpus():
    ledger = make(gpu(0), gpu(1), gpu(2))
    lease = ledger.submit("a", "u", mib(500, gpu_count=2), T0)
    assert lease.state is LeaseState.ACTIVE
    assert len(lease.allocations) == 2
    assert set(lease.allocations.values()) == {500}
    ledger.check_invariants()


def test_fraction_is_relative_to_capacity_minus_reserve():
    ledger = make(gpu(0, total=1000, reserved=200))
    assert ledger.gpus[0].capacity_mib == 800
    half = ledger.submit("a", "u", frac(0.5), T0)
    assert half.allocations == {0: 400}
    whole = ledger.submit("b", "u", frac(0.5), T0)
    assert whole.allocations == {0: 400}
    assert ledger.free_mib(0) == 0
    assert ledger.granted_mib(0) == 800


def test_fraction_one_takes_the_whole_capacity_not_the_reserve():
    ledger = make(gpu(0, total=1000, reserved=100))
    lease = ledger.submit("a", "u", frac(1.0), T0)
    assert lease.allocations == {0: 900}
    # nothing more fits
    with pytest.raises(NoLease):
        ledger.submit("b", "u", mib(1, wait=False), T0)


def test_fraction_on_gpus_of_different_sizes():
    ledger = make(gpu(0, 1000), gpu(1, 3000))
    lease = ledger.submit("a", "u", frac(0.5, gpu_count=2), T0)
    assert lease.allocations == {0: 500, 1: 1500}


def test_four_quarters_fit_on_one_gpu_and_fifth_queues():
    ledger = make(gpu(0, 1000))
    for i in range(4):
        lease = ledger.submit(f"q{i}", "u", frac(0.25), T0 + i)
        assert lease.state is LeaseState.ACTIVE, i
        assert lease.allocations == {0: 250}
    assert ledger.free_mib(0) == 0
    fifth = ledger.submit("q4", "u", frac(0.25), T0 + 4)
    assert fifth.state is LeaseState.QUEUED
    assert fifth.allocations == {}
    assert ledger.queue_positions(T0 + 4) == {"q4": 1}
    sixth = ledger.submit("q5", "u", frac(0.25), T0 + 5)
    assert sixth.state is LeaseState.QUEUED
    assert ledger.queue_positions(T0 + 5) == {"q4": 1, "q5": 2}
    assert [x.id for x in ledger.queue(T0 + 5)] == ["q4", "q5"]
    ledger.check_invariants()


def test_release_moves_the_queue():
    ledger = make(gpu(0, 1000))
    for i in range(4):
        ledger.submit(f"q{i}", "u", frac(0.25), T0)
    ledger.submit("w1", "u", frac(0.25), T0 + 1)
    ledger.submit("w2", "u", frac(0.25), T0 + 2)
    ledger.take_changes()
    released = ledger.release("q1", T0 + 10)
    assert released.state is LeaseState.RELEASED
    assert released.ended_at == T0 + 10
    assert released.allocations == {0: 250}
    w1 = ledger.get("w1")
    assert w1.state is LeaseState.ACTIVE
    assert w1.granted_at == T0 + 10
    assert w1.allocations == {0: 250}
    assert ledger.get("w2").state is LeaseState.QUEUED
    assert ledger.queue_positions(T0 + 10) == {"w2": 1}
    assert kinds(ledger.take_changes()) == [("q1", "released"), ("w1", "granted")]
    ledger.check_invariants()


def test_release_is_idempotent():
    ledger = make()
    ledger.submit("a", "u", mib(100), T0)
    first = ledger.release("a", T0 + 1)
    assert first.state is LeaseState.RELEASED
    version = ledger.version
    ledger.take_changes()
    again = ledger.release("a", T0 + 2)
    assert again.state is LeaseState.RELEASED
    assert again.ended_at == T0 + 1
    assert ledger.version == version
    assert ledger.take_changes() == []


def test_release_of_queued_request_cancels_it():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(1000), T0)
    ledger.submit("b", "u", mib(10), T0)
    lease = ledger.release("b", T0 + 1)
    assert lease.state is LeaseState.CANCELLED
    assert ledger.queue(T0 + 1) == []
    assert ledger.get("a").state is LeaseState.ACTIVE


# ----- refusals ------------------------------------------------------------------


def test_no_wait_request_on_full_gpu_raises_and_changes_nothing():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(800), T0)
    ledger.submit("b", "u", mib(900), T0)  # queued
    ledger.take_changes()
    before = snapshot(ledger)
    with pytest.raises(NoLease):
        ledger.submit("c", "u", mib(300, wait=False), T0 + 1)
    assert snapshot(ledger) == before
    assert ledger.take_changes() == []
    with pytest.raises(NotFound):
        ledger.get("c")
    # The id was not consumed: the same id can be used later.
    ledger.release("a", T0 + 2)  # b granted (900), 100 left
    assert ledger.get("b").state is LeaseState.ACTIVE
    assert ledger.submit("c", "u", mib(100, wait=False), T0 + 3).state is LeaseState.ACTIVE


def test_no_wait_request_that_fits_is_granted():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(500), T0)
    assert ledger.submit("b", "u", mib(500, wait=False), T0).state is LeaseState.ACTIVE


def test_more_gpus_than_exist_is_unsatisfiable():
    ledger = make(gpu(0), gpu(1))
    before = snapshot(ledger)
    with pytest.raises(Unsatisfiable):
        ledger.submit("a", "u", mib(10, gpu_count=3), T0)
    assert snapshot(ledger) == before


def test_more_memory_than_any_gpu_is_unsatisfiable():
    ledger = make(gpu(0, 1000), gpu(1, 2000, reserved=500))
    with pytest.raises(Unsatisfiable):
        ledger.submit("a", "u", mib(1501), T0)
    # exactly the largest capacity is fine
    assert ledger.submit("b", "u", mib(1500), T0).allocations == {1: 1500}


def test_memory_above_capacity_because_of_reserve_is_unsatisfiable():
    ledger = make(gpu(0, 1000, reserved=300))
    with pytest.raises(Unsatisfiable):
        ledger.submit("a", "u", mib(701), T0)


def test_the_ledgers_refusals_are_the_error_trees():
    assert issubclass(Unsatisfiable, UsageError)
    assert all(issubclass(cls, BitshareError) for cls in REFUSALS)
    assert {NoLease, NotFound, UsageError, WrongState} <= set(REFUSALS)


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.25, float("nan"), float("inf")])
def test_invalid_fraction(fraction):
    with pytest.raises(UsageError):
        Size(fraction=fraction)


@pytest.mark.parametrize("memory", [0, -1, -1024])
def test_invalid_memory(memory):
    with pytest.raises(UsageError):
        Size(memory_mib=memory)


def test_size_needs_exactly_one_of_fraction_or_memory():
    with pytest.raises(UsageError):
        Size()
    with pytest.raises(UsageError):
        Size(fraction=0.5, memory_mib=100)


@pytest.mark.parametrize("count", [0, -1])
def test_invalid_gpu_count(count):
    with pytest.raises(UsageError):
        LeaseSpec(size=Size(memory_mib=10), gpu_count=count)


@pytest.mark.parametrize("compute", [101, -1])
def test_invalid_compute(compute):
    with pytest.raises(UsageError):
        LeaseSpec(size=Size(memory_mib=10), compute_pct=compute)


@pytest.mark.parametrize("compute", [0, 1, 100])
def test_valid_compute_bounds(compute):
    assert LeaseSpec(size=Size(memory_mib=10), compute_pct=compute).compute_pct == compute


@pytest.mark.parametrize("field", ["wait_timeout_s", "ttl_s"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_invalid_timeouts(field, value):
    with pytest.raises(UsageError):
        LeaseSpec(size=Size(memory_mib=10), **{field: value})


def test_ttl_over_policy_limit_is_invalid_and_changes_nothing():
    ledger = make(max_ttl_s=100.0)
    before = snapshot(ledger)
    with pytest.raises(UsageError):
        ledger.submit("a", "u", mib(10, ttl_s=101.0), T0)
    assert snapshot(ledger) == before
    assert ledger.submit("a", "u", mib(10, ttl_s=100.0), T0).ttl_s == 100.0


def test_duplicate_lease_id_is_invalid():
    ledger = make()
    ledger.submit("a", "u", mib(10), T0)
    with pytest.raises(UsageError):
        ledger.submit("a", "u", mib(10), T0)
    ledger.release("a", T0)
    with pytest.raises(UsageError):  # also when the first one has ended
        ledger.submit("a", "u", mib(10), T0)


def test_unknown_gpu_index_in_filter_is_invalid():
    ledger = make(gpu(0), gpu(1))
    with pytest.raises(UsageError):
        ledger.submit("a", "u", LeaseSpec(size=Size(memory_mib=10), filter=GpuFilter(indices=(7,))), T0)


def test_filter_by_index_and_name():
    ledger = make(gpu(0, name="NVIDIA A100"), gpu(1, name="NVIDIA H100"))
    by_index = ledger.submit("a", "u", LeaseSpec(size=Size(memory_mib=10), filter=GpuFilter(indices=(1,))), T0)
    assert set(by_index.allocations) == {1}
    by_name = ledger.submit("b", "u", LeaseSpec(size=Size(memory_mib=10), filter=GpuFilter(name="a100")), T0)
    assert set(by_name.allocations) == {0}
    with pytest.raises(Unsatisfiable):
        ledger.submit("c", "u", LeaseSpec(size=Size(memory_mib=10), filter=GpuFilter(name="V100")), T0)


def test_unknown_lease_id():
    ledger = make()
    for op in (
        lambda: ledger.get("nope"),
        lambda: ledger.release("nope", T0),
        lambda: ledger.heartbeat("nope", T0),
        lambda: ledger.revoke("nope", "x", T0),
        lambda: ledger.resize("nope", Size(memory_mib=10), T0),
        lambda: ledger.set_priority("nope", 3, T0),
    ):
        with pytest.raises(NotFound):
            op()
    assert ledger.version == 0
    assert ledger.find_request("u", "nope") is None


def test_operations_on_ended_lease_are_wrong_state():
    ledger = make()
    ledger.submit("a", "u", mib(10), T0)
    ledger.release("a", T0 + 1)
    version = ledger.version
    for op in (
        lambda: ledger.heartbeat("a", T0 + 2),
        lambda: ledger.revoke("a", "x", T0 + 2),
        lambda: ledger.resize("a", Size(memory_mib=20), T0 + 2),
        lambda: ledger.set_priority("a", 1, T0 + 2),
    ):
        with pytest.raises(WrongState):
            op()
    assert ledger.version == version
    assert ledger.get("a").state is LeaseState.RELEASED


# ----- ordering ------------------------------------------------------------------


def test_queue_orders_by_priority_then_arrival():
    ledger = make(gpu(0, 1000), aging_s=0.0)
    ledger.submit("holder", "u", mib(1000), T0)
    ledger.submit("low1", "u", mib(1000, priority=0), T0 + 1)
    ledger.submit("high1", "u", mib(1000, priority=5), T0 + 2)
    ledger.submit("low2", "u", mib(1000, priority=0), T0 + 3)
    ledger.submit("high2", "u", mib(1000, priority=5), T0 + 4)
    ledger.submit("mid", "u", mib(1000, priority=2), T0 + 5)
    assert [x.id for x in ledger.queue(T0 + 6)] == ["high1", "high2", "mid", "low1", "low2"]
    assert ledger.queue_positions(T0 + 6)["low2"] == 5

    order = []
    current = "holder"
    for step in range(5):
        ledger.release(current, T0 + 10 + step)
        (current,) = [x.id for x in ledger.active()]
        order.append(current)
    assert order == ["high1", "high2", "mid", "low1", "low2"]


def test_backfill_small_request_goes_ahead_of_big_head():
    ledger = make(gpu(0, 1000), starvation_s=120.0)
    ledger.submit("a", "u", mib(600), T0)
    big = ledger.submit("big", "u", mib(800), T0 + 1)
    assert big.state is LeaseState.QUEUED
    small = ledger.submit("small", "u", mib(300), T0 + 2)
    assert small.state is LeaseState.ACTIVE
    assert ledger.get("big").state is LeaseState.QUEUED
    assert ledger.queue_positions(T0 + 2) == {"big": 1}


def test_backfill_on_release_skips_a_head_that_does_not_fit():
    ledger = make(gpu(0, 1000), starvation_s=120.0)
    ledger.submit("a", "u", mib(500), T0)
    ledger.submit("b", "u", mib(500), T0)
    ledger.submit("big", "u", mib(800), T0 + 1)
    ledger.submit("small", "u", mib(400), T0 + 2)
    assert ledger.get("small").state is LeaseState.QUEUED
    ledger.release("a", T0 + 10)  # 500 free: big (800) does not fit, small (400) does
    assert ledger.get("small").state is LeaseState.ACTIVE
    assert ledger.get("big").state is LeaseState.QUEUED


def test_starving_head_blocks_backfill_on_submit():
    ledger = make(gpu(0, 1000), starvation_s=120.0, aging_s=0.0)
    ledger.submit("a", "u", mib(600), T0)
    ledger.submit("big", "u", mib(800), T0)
    # before the limit a small request still backfills
    assert ledger.submit("early", "u", mib(100), T0 + 119).state is LeaseState.ACTIVE
    # at the limit it must wait behind the head
    late = ledger.submit("late", "u", mib(100), T0 + 120)
    assert late.state is LeaseState.QUEUED
    assert [x.id for x in ledger.queue(T0 + 120)] == ["big", "late"]
    # and a no-wait one is refused, changing nothing
    before = snapshot(ledger)
    with pytest.raises(NoLease):
        ledger.submit("nowait", "u", mib(100, wait=False), T0 + 121)
    assert snapshot(ledger) == before


def test_starving_head_blocks_backfill_on_tick_and_release():
    ledger = make(gpu(0, 1000), starvation_s=120.0, aging_s=0.0, lease_ttl_s=1e6)
    ledger.submit("a", "u", mib(500), T0)
    ledger.submit("b", "u", mib(400), T0)
    ledger.submit("big", "u", mib(800), T0 + 1)
    ledger.submit("small", "u", mib(200), T0 + 2)  # 100 free: queued
    assert ledger.get("small").state is LeaseState.QUEUED
    # Long after the head started starving, b goes: 500 free, small fits but big does not.
    ledger.heartbeat("big", T0 + 200)
    ledger.heartbeat("small", T0 + 200)
    ledger.release("b", T0 + 200)
    assert ledger.get("small").state is LeaseState.QUEUED
    assert ledger.get("big").state is LeaseState.QUEUED
    ledger.tick(T0 + 201)
    assert ledger.get("small").state is LeaseState.QUEUED
    # When the head fits it is granted first and the rest follows.
    ledger.release("a", T0 + 202)
    assert ledger.get("big").state is LeaseState.ACTIVE
    assert ledger.get("small").state is LeaseState.ACTIVE
    ledger.check_invariants()


def test_non_starving_head_allows_backfill_on_tick():
    ledger = make(gpu(0, 1000), starvation_s=120.0, aging_s=0.0, lease_ttl_s=1e6)
    ledger.submit("a", "u", mib(500), T0)
    ledger.submit("b", "u", mib(400), T0)
    ledger.submit("big", "u", mib(800), T0 + 1)
    ledger.submit("small", "u", mib(200), T0 + 2)
    ledger.release("b", T0 + 50)
    assert ledger.get("small").state is LeaseState.ACTIVE
    assert ledger.get("big").state is LeaseState.QUEUED


def test_aging_lets_old_low_priority_request_overtake():
    ledger = make(gpu(0, 1000), aging_s=60.0, starvation_s=1e9, lease_ttl_s=1e6)
    ledger.submit("holder", "u", mib(1000), T0)
    ledger.submit("old", "u", mib(1000, priority=0), T0)
    ledger.submit("new", "u", mib(1000, priority=2), T0 + 100)
    # at T0+100 old has aged one point: 1 < 2
    assert [x.id for x in ledger.queue(T0 + 100)] == ["new", "old"]
    # at T0+180 old has 3 points; new (aged one point at T0+160) has 3: tie goes to arrival
    assert [x.id for x in ledger.queue(T0 + 180)] == ["old", "new"]
    ledger.release("holder", T0 + 180)
    assert ledger.get("old").state is LeaseState.ACTIVE
    assert ledger.get("new").state is LeaseState.QUEUED


def test_without_aging_priority_wins_forever():
    ledger = make(gpu(0, 1000), aging_s=0.0, starvation_s=1e9, lease_ttl_s=1e6)
    ledger.submit("holder", "u", mib(1000), T0)
    ledger.submit("old", "u", mib(1000, priority=0), T0)
    ledger.submit("new", "u", mib(1000, priority=2), T0 + 100)
    assert [x.id for x in ledger.queue(T0 + 100000)] == ["new", "old"]


def test_set_priority_reorders_queue():
    ledger = make(gpu(0, 1000), aging_s=0.0)
    ledger.submit("holder", "u", mib(1000), T0)
    ledger.submit("a", "u", mib(1000), T0 + 1)
    ledger.submit("b", "u", mib(1000), T0 + 2)
    assert [x.id for x in ledger.queue(T0 + 3)] == ["a", "b"]
    ledger.take_changes()
    lease = ledger.set_priority("b", 10, T0 + 3)
    assert lease.priority == 10
    assert [x.id for x in ledger.queue(T0 + 3)] == ["b", "a"]
    assert kinds(ledger.take_changes()) == [("b", "priority")]
    ledger.release("holder", T0 + 4)
    assert ledger.get("b").state is LeaseState.ACTIVE
    assert ledger.get("a").state is LeaseState.QUEUED


def test_set_priority_of_active_is_wrong_state():
    ledger = make()
    ledger.submit("a", "u", mib(10), T0)
    before = snapshot(ledger)
    with pytest.raises(WrongState):
        ledger.set_priority("a", 5, T0)
    assert snapshot(ledger) == before


# ----- compute -------------------------------------------------------------------


def test_two_60_percent_compute_leases_cannot_share_a_gpu():
    ledger = make(gpu(0, 1000))
    first = ledger.submit("a", "u", mib(100, compute_pct=60), T0)
    assert first.state is LeaseState.ACTIVE
    second = ledger.submit("b", "u", mib(100, compute_pct=60), T0)
    assert second.state is LeaseState.QUEUED  # memory is free, compute is not
    assert ledger.granted_compute(0) == 60
    with pytest.raises(NoLease):
        ledger.submit("c", "u", mib(100, compute_pct=60, wait=False), T0)
    # 40% still fits, and a request with no compute share is not limited by compute
    assert ledger.submit("d", "u", mib(100, compute_pct=40), T0).state is LeaseState.ACTIVE
    assert ledger.submit("e", "u", mib(100), T0).state is LeaseState.ACTIVE
    assert ledger.granted_compute(0) == 100
    ledger.release("a", T0 + 1)  # 40% left in use: b's 60% now fits
    assert ledger.get("b").state is LeaseState.ACTIVE
    assert ledger.granted_compute(0) == 100
    ledger.check_invariants()


def test_compute_spreads_60_percent_leases_over_gpus():
    ledger = make(gpu(0), gpu(1))
    a = ledger.submit("a", "u", mib(100, compute_pct=60), T0)
    b = ledger.submit("b", "u", mib(100, compute_pct=60), T0)
    assert b.state is LeaseState.ACTIVE
    assert set(a.allocations).isdisjoint(b.allocations)


# ----- expiry, timeouts, idle ----------------------------------------------------


def test_active_lease_expires_after_ttl_without_heartbeat():
    ledger = make(lease_ttl_s=30.0)
    lease = ledger.submit("a", "u", mib(500), T0)
    assert lease.expires_at == T0 + 30
    ledger.tick(T0 + 29.9)
    assert lease.state is LeaseState.ACTIVE
    ledger.take_changes()
    ledger.tick(T0 + 30)
    assert ledger.get("a").state is LeaseState.EXPIRED
    assert ledger.get("a").ended_at == T0 + 30
    assert ledger.granted_mib(0) == 0
    assert kinds(ledger.take_changes()) == [("a", "expired")]


def test_heartbeat_pushes_expiry_out():
    ledger = make(lease_ttl_s=30.0)
    ledger.submit("a", "u", mib(500), T0)
    ledger.heartbeat("a", T0 + 20)
    assert ledger.get("a").expires_at == T0 + 50
    ledger.tick(T0 + 40)
    assert ledger.get("a").state is LeaseState.ACTIVE
    # an older heartbeat never pulls the expiry in
    ledger.heartbeat("a", T0 + 10)
    assert ledger.get("a").expires_at == T0 + 50
    ledger.tick(T0 + 50)
    assert ledger.get("a").state is LeaseState.EXPIRED


def test_lease_ttl_from_spec_overrides_policy():
    ledger = make(lease_ttl_s=30.0)
    lease = ledger.submit("a", "u", mib(10, ttl_s=300.0), T0)
    assert lease.expires_at == T0 + 300
    ledger.tick(T0 + 100)
    assert lease.state is LeaseState.ACTIVE
    ledger.heartbeat("a", T0 + 250)
    assert lease.expires_at == T0 + 550


def test_expiry_moves_the_queue():
    ledger = make(gpu(0, 1000), lease_ttl_s=30.0)
    ledger.submit("a", "u", mib(1000), T0)
    ledger.submit("b", "u", mib(1000), T0 + 1)
    ledger.heartbeat("b", T0 + 25)
    ledger.take_changes()
    ledger.tick(T0 + 30)
    assert ledger.get("a").state is LeaseState.EXPIRED
    assert ledger.get("b").state is LeaseState.ACTIVE
    assert kinds(ledger.take_changes()) == [("a", "expired"), ("b", "granted")]


def test_queued_request_without_heartbeat_is_cancelled():
    ledger = make(gpu(0, 1000), lease_ttl_s=30.0)
    ledger.submit("a", "u", mib(1000, ttl_s=1000.0), T0)
    queued = ledger.submit("b", "u", mib(1000), T0)
    assert queued.expires_at == T0 + 30
    ledger.heartbeat("b", T0 + 20)
    assert queued.expires_at == T0 + 50
    ledger.heartbeat("b", T0 + 5)  # a late-delivered older heartbeat does not pull it in
    assert queued.expires_at == T0 + 50
    ledger.tick(T0 + 40)
    assert ledger.get("b").state is LeaseState.QUEUED
    ledger.take_changes()
    ledger.tick(T0 + 50)
    b = ledger.get("b")
    assert b.state is LeaseState.CANCELLED
    assert b.end_reason == "requester went away"
    assert ledger.queue(T0 + 50) == []
    assert kinds(ledger.take_changes()) == [("b", "cancelled")]
    assert ledger.get("a").state is LeaseState.ACTIVE


def test_wait_timeout_times_out_queued_request():
    ledger = make(gpu(0, 1000), lease_ttl_s=1e6)
    ledger.submit("a", "u", mib(1000), T0)
    queued = ledger.submit("b", "u", mib(1000, wait_timeout_s=60.0), T0)
    assert queued.wait_deadline == T0 + 60
    ledger.tick(T0 + 59)
    assert queued.state is LeaseState.QUEUED
    ledger.take_changes()
    ledger.tick(T0 + 60)
    assert ledger.get("b").state is LeaseState.TIMED_OUT
    assert kinds(ledger.take_changes()) == [("b", "timed_out")]


def test_granted_request_has_no_wait_deadline():
    ledger = make(gpu(0, 1000), lease_ttl_s=1e6)
    ledger.submit("a", "u", mib(1000), T0)
    ledger.submit("b", "u", mib(1000, wait_timeout_s=60.0), T0)
    ledger.release("a", T0 + 10)
    b = ledger.get("b")
    assert b.state is LeaseState.ACTIVE
    assert b.wait_deadline is None
    ledger.tick(T0 + 100)
    assert b.state is LeaseState.ACTIVE


def test_idle_lease_is_reclaimed():
    ledger = make(gpu(0, 1000), lease_ttl_s=1e6, idle_timeout_s=300.0)
    ledger.submit("a", "u", mib(1000), T0)
    ledger.submit("b", "u", mib(1000), T0)
    ledger.heartbeat("a", T0 + 200)
    ledger.heartbeat("b", T0 + 200)
    ledger.tick(T0 + 299)
    assert ledger.get("a").state is LeaseState.ACTIVE
    ledger.take_changes()
    ledger.tick(T0 + 300)
    a = ledger.get("a")
    assert a.state is LeaseState.REVOKED
    assert a.end_reason == "idle"
    assert ledger.get("b").state is LeaseState.ACTIVE
    assert kinds(ledger.take_changes()) == [("a", "revoked"), ("b", "granted")]


def test_note_activity_prevents_idle_reclaim():
    ledger = make(gpu(0, 1000), lease_ttl_s=1e6, idle_timeout_s=300.0)
    ledger.submit("a", "u", mib(1000), T0)
    ledger.note_activity("a", T0 + 250)
    ledger.tick(T0 + 300)
    ledger.tick(T0 + 549)
    assert ledger.get("a").state is LeaseState.ACTIVE
    ledger.tick(T0 + 550)
    assert ledger.get("a").state is LeaseState.REVOKED


def test_idle_reclaim_off_by_default():
    ledger = make(gpu(0, 1000), lease_ttl_s=1e6)
    ledger.submit("a", "u", mib(1000), T0)
    ledger.tick(T0 + 1e5)
    assert ledger.get("a").state is LeaseState.ACTIVE


def test_note_activity_on_unknown_or_queued_is_harmless():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(1000), T0)
    ledger.submit("b", "u", mib(1000), T0)
    before = snapshot(ledger)
    ledger.note_activity("nope", T0 + 1)
    ledger.note_activity("b", T0 + 1)
    assert snapshot(ledger) == before


# ----- revoke --------------------------------------------------------------------


def test_revoke_active_frees_capacity_and_moves_queue():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(700), T0)
    ledger.submit("b", "u", mib(700), T0)
    ledger.take_changes()
    lease = ledger.revoke("a", "admin said so", T0 + 5)
    assert lease.state is LeaseState.REVOKED
    assert lease.end_reason == "admin said so"
    assert ledger.get("b").state is LeaseState.ACTIVE
    assert ledger.granted_mib(0) == 700
    assert kinds(ledger.take_changes()) == [("a", "revoked"), ("b", "granted")]


def test_revoke_queued_cancels():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(700), T0)
    ledger.submit("b", "u", mib(700), T0)
    lease = ledger.revoke("b", "admin", T0 + 5)
    assert lease.state is LeaseState.CANCELLED
    assert ledger.queue(T0 + 5) == []
    assert ledger.get("a").state is LeaseState.ACTIVE


# ----- resize --------------------------------------------------------------------


def test_resize_grow_when_free():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(300), T0)
    ledger.take_changes()
    lease = ledger.resize("a", Size(memory_mib=800), T0 + 1)
    assert lease.allocations == {0: 800}
    assert ledger.granted_mib(0) == 800
    assert kinds(ledger.take_changes()) == [("a", "resized")]


def test_resize_grow_without_room_is_refused_and_changes_nothing():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(300), T0)
    ledger.submit("b", "u", mib(600), T0)
    ledger.take_changes()
    before = snapshot(ledger)
    with pytest.raises(NoLease):
        ledger.resize("a", Size(memory_mib=500), T0 + 1)
    assert snapshot(ledger) == before
    assert ledger.get("a").allocations == {0: 300}
    assert ledger.take_changes() == []
    # exactly to the free room is fine
    assert ledger.resize("a", Size(memory_mib=400), T0 + 2).allocations == {0: 400}


def test_resize_above_capacity_is_unsatisfiable():
    ledger = make(gpu(0, 1000, reserved=100))
    ledger.submit("a", "u", mib(300), T0)
    before = snapshot(ledger)
    with pytest.raises(Unsatisfiable):
        ledger.resize("a", Size(memory_mib=901), T0)
    assert snapshot(ledger) == before


def test_resize_shrink_frees_and_moves_queue():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(800), T0)
    ledger.submit("b", "u", mib(500), T0)
    ledger.take_changes()
    lease = ledger.resize("a", Size(fraction=0.5), T0 + 1)
    assert lease.allocations == {0: 500}
    assert ledger.get("b").state is LeaseState.ACTIVE
    assert ledger.free_mib(0) == 0
    assert kinds(ledger.take_changes()) == [("a", "resized"), ("b", "granted")]


def test_resize_multi_gpu_applies_to_every_gpu():
    ledger = make(gpu(0, 1000), gpu(1, 2000))
    ledger.submit("a", "u", frac(0.25, gpu_count=2), T0)
    lease = ledger.resize("a", Size(fraction=0.5), T0)
    assert lease.allocations == {0: 500, 1: 1000}


def test_resize_of_queued_is_wrong_state():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(1000), T0)
    ledger.submit("b", "u", mib(500), T0)
    before = snapshot(ledger)
    with pytest.raises(WrongState):
        ledger.resize("b", Size(memory_mib=100), T0)
    assert snapshot(ledger) == before


# ----- drain ---------------------------------------------------------------------


def test_drain_stops_placement_but_keeps_existing_lease():
    ledger = make(gpu(0, 1000), gpu(1, 1000))
    a = ledger.submit("a", "u", mib(500), T0)
    (used,) = a.allocations
    other = 1 - used
    ledger.drain(used, True, T0)
    assert ledger.gpus[used].drained
    assert a.state is LeaseState.ACTIVE
    # the next one would pack onto the used GPU, but it is drained
    b = ledger.submit("b", "u", mib(200), T0)
    assert b.allocations == {other: 200}
    ledger.drain(other, True, T0)
    c = ledger.submit("c", "u", mib(100), T0)
    assert c.state is LeaseState.QUEUED
    with pytest.raises(NoLease):
        ledger.submit("d", "u", mib(100, wait=False), T0)
    assert a.state is LeaseState.ACTIVE and b.state is LeaseState.ACTIVE


def test_undrain_moves_queue():
    ledger = make(gpu(0, 1000))
    ledger.drain(0, True, T0)
    queued = ledger.submit("a", "u", mib(100), T0)
    assert queued.state is LeaseState.QUEUED
    version = ledger.version
    ledger.drain(0, True, T0 + 1)  # already drained: no change
    assert ledger.version == version
    ledger.drain(0, False, T0 + 2)
    assert ledger.get("a").state is LeaseState.ACTIVE
    assert ledger.get("a").granted_at == T0 + 2


def test_drain_unknown_gpu_is_invalid():
    ledger = make(gpu(0))
    with pytest.raises(UsageError):
        ledger.drain(5, True, T0)


# ----- request ids ---------------------------------------------------------------


def test_find_request_by_owner_and_request_id():
    ledger = make()
    ledger.submit("a", "alice", mib(10), T0, request_id="r1")
    ledger.submit("b", "bob", mib(10), T0, request_id="r1")
    assert ledger.find_request("alice", "r1").id == "a"
    assert ledger.find_request("bob", "r1").id == "b"
    assert ledger.find_request("alice", "r2") is None
    assert ledger.find_request("carol", "r1") is None
    ledger.release("a", T0 + 1)
    ended = ledger.find_request("alice", "r1")
    assert ended is not None and ended.state is LeaseState.RELEASED


def test_refused_request_is_not_findable():
    ledger = make(gpu(0, 100))
    ledger.submit("a", "u", mib(100), T0)
    with pytest.raises(NoLease):
        ledger.submit("b", "u", mib(10, wait=False), T0, request_id="r")
    assert ledger.find_request("u", "r") is None


# ----- changes -------------------------------------------------------------------


def test_take_changes_reports_and_clears():
    ledger = make(gpu(0, 1000))
    ledger.submit("a", "u", mib(1000), T0)
    ledger.submit("b", "u", mib(1000), T0)
    changes = ledger.take_changes()
    assert kinds(changes) == [("a", "granted"), ("b", "queued")]
    assert changes[0].lease.state is LeaseState.ACTIVE
    assert changes[1].lease.state is LeaseState.QUEUED
    assert ledger.take_changes() == []
    ledger.release("a", T0 + 1)
    changes = ledger.take_changes()
    assert kinds(changes) == [("a", "released"), ("b", "granted")]
    # a change holds a copy, not the live lease
    assert changes[1].lease is not ledger.get("b")
    assert changes[1].lease.allocations == {0: 1000}
    ledger.resize("b", Size(memory_mib=10), T0 + 2)
    assert changes[1].lease.allocations == {0: 1000}


def test_version_grows_with_each_change():
    ledger = make(gpu(0, 1000))
    v0 = ledger.version
    ledger.submit("a", "u", mib(1000), T0)
    v1 = ledger.version
    assert v1 > v0
    ledger.heartbeat("a", T0 + 1)
    ledger.tick(T0 + 2)  # nothing happens
    assert ledger.version == v1
    ledger.release("a", T0 + 3)
    assert ledger.version > v1


# ----- restore -------------------------------------------------------------------


def _previous_run() -> tuple[Ledger, list[Lease]]:
    old = make(gpu(0, 1000), gpu(1, 1000), lease_ttl_s=30.0)
    old.submit("a", "u", mib(700), T0, request_id="ra")
    old.submit("b", "u", mib(700), T0)
    old.submit("c", "u", mib(700), T0)  # queued
    old.submit("d", "u", mib(200), T0)
    old.submit("gone", "u", mib(10), T0)
    old.release("gone", T0 + 1)
    leases = [x.copy() for x in old.live()] + [old.get("gone").copy()]
    return old, leases


def test_restore_brings_back_leases_with_same_allocations():
    old, leases = _previous_run()
    new = make(gpu(0, 1000), gpu(1, 1000), lease_ttl_s=30.0)
    now = T0 + 500
    new.restore(leases, now)
    new.check_invariants()
    for lease in old.live():
        restored = new.get(lease.id)
        assert restored.state is lease.state
        assert restored.allocations == lease.allocations
    assert {x.id for x in new.active()} == {x.id for x in old.active()}
    assert [x.id for x in new.queue(now)] == ["c"]
    for index in old.gpus:
        assert new.granted_mib(index) == old.granted_mib(index)
    assert new.get("gone").state is LeaseState.RELEASED
    assert new.find_request("u", "ra").id == "a"


def test_restore_gives_holders_a_fresh_ttl():
    _, leases = _previous_run()
    new = make(gpu(0, 1000), gpu(1, 1000), lease_ttl_s=30.0)
    now = T0 + 500  # long after the old expiry times
    new.restore(leases, now)
    assert new.get("a").expires_at == now + 30
    assert new.get("c").expires_at == now + 30
    new.tick(now + 29)
    assert new.get("a").state is LeaseState.ACTIVE
    assert new.get("c").state is LeaseState.QUEUED
    new.tick(now + 30)
    assert new.get("a").state is LeaseState.EXPIRED


def test_restore_does_not_double_grant():
    old, leases = _previous_run()
    new = make(gpu(0, 1000), gpu(1, 1000), lease_ttl_s=30.0)
    new.restore(leases, T0 + 500)
    new.check_invariants()
    assert new.get("c").state is LeaseState.QUEUED
    assert new.get("c").allocations == {}
    for index, g in new.gpus.items():
        assert new.granted_mib(index) <= g.capacity_mib
    # the copies handed in are not aliased into the new ledger
    handed_in = next(x for x in leases if x.id == "a")
    handed_in.allocations[0] = 1
    handed_in.state = LeaseState.RELEASED
    assert new.get("a").allocations == old.get("a").allocations
    assert new.get("a").state is LeaseState.ACTIVE


def test_restore_then_new_ids_do_not_collide_in_order():
    _, leases = _previous_run()
    new = make(gpu(0, 1000), gpu(1, 1000), lease_ttl_s=30.0)
    new.restore(leases, T0 + 500)
    fresh = new.submit("e", "u", mib(1000), T0 + 501)
    assert fresh.seq > max(x.seq for x in leases)
    assert [x.id for x in new.queue(T0 + 501)] == ["c", "e"]


def test_restore_revokes_lease_on_vanished_gpu():
    old, leases = _previous_run()
    on_gpu1 = [x.id for x in old.active() if 1 in x.allocations]
    assert on_gpu1
    new = make(gpu(0, 1000), lease_ttl_s=30.0)
    new.restore(leases, T0 + 500)
    for lease_id in on_gpu1:
        assert new.get(lease_id).state is LeaseState.REVOKED
    new.check_invariants()


def test_restore_loads_every_active_lease_before_moving_the_queue():
    # A queued request older than an active one (the active one was backfilled past it):
    # the queued one must not be granted into room the later active lease already holds.
    old = make(gpu(0, 1000), lease_ttl_s=1e6, starvation_s=1e6)
    old.submit("a", "u", mib(600), T0)
    old.submit("big", "u", mib(800), T0 + 1)  # queued
    old.submit("small", "u", mib(300), T0 + 2)  # backfilled past big
    old.release("a", T0 + 3)  # 700 free: big still does not fit
    assert old.get("big").state is LeaseState.QUEUED
    assert old.get("small").state is LeaseState.ACTIVE
    assert old.get("big").seq < old.get("small").seq
    saved = [x.copy() for x in old.live()] + [old.get("a").copy()]
    new = make(gpu(0, 1000), lease_ttl_s=1e6, starvation_s=1e6)
    new.restore(saved, T0 + 10)
    new.check_invariants()
    assert new.get("big").state is LeaseState.QUEUED
    assert new.get("small").allocations == {0: 300}
    assert new.granted_mib(0) == 300
    assert new.take_changes() == []


# ----- request ids, capacity changes, growth rules -------------------------------


def test_evicting_an_old_ended_lease_keeps_the_request_id_of_a_newer_live_lease():
    """A retried request must still find the live lease that reused an evicted lease's request id."""
    ledger = make(gpu(0, 1000))
    ledger.submit("old", "alice", mib(10), T0, request_id="r")
    ledger.release("old", T0)
    ledger.submit("new", "alice", mib(10), T0 + 1, request_id="r")
    assert ledger.find_request("alice", "r").id == "new"
    for i in range(ENDED_KEPT):  # push "old" out of the ended leases kept
        ledger.submit(f"filler{i}", "bob", mib(1), T0 + 2)
        ledger.release(f"filler{i}", T0 + 2)
    with pytest.raises(NotFound):
        ledger.get("old")  # evicted, as designed
    assert ledger.get("new").state is LeaseState.ACTIVE
    found = ledger.find_request("alice", "r")
    assert found is not None and found.id == "new", "live lease 'new' lost its request id"


def test_growing_is_refused_on_a_drained_gpu_but_shrinking_is_not():
    ledger = make(gpu(0, 1000))
    lease = ledger.submit("a", "alice", mib(100), T0)
    ledger.drain(0, True, T0)
    with pytest.raises(NoLease, match="drained"):
        ledger.resize(lease.id, Size(memory_mib=200), T0)
    assert ledger.get("a").allocations == {0: 100}
    ledger.resize(lease.id, Size(memory_mib=50), T0)
    assert ledger.granted_mib(0) == 50


def test_restore_onto_smaller_capacity_keeps_the_oldest_leases():
    before = make(gpu(0, 1000))
    for i, at in enumerate((T0, T0 + 1, T0 + 2)):
        before.submit(f"l{i}", "alice", mib(300), at)
    after = make(gpu(0, 1000, reserved=300))  # lends 700 MiB now: two of the three fit
    after.restore([lease.copy() for lease in before.live()], T0 + 10)
    after.check_invariants()
    assert [lease.id for lease in after.active()] == ["l0", "l1"]
    assert after.get("l2").state is LeaseState.REVOKED and "now lends 700 MiB" in after.get("l2").end_reason
