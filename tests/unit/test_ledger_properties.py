"""Stateful property tests of the lease ledger (bitshare.daemon.ledger).

A hypothesis state machine drives one Ledger with random operations and keeps
its own, independent model of what each lease should look like: its state, its
allocations, its expiry and wait deadline, its queue order. After every step the
ledger is compared with the model, and the transitions an operation caused are
checked (no ended lease comes back, allocations only move by resize, a refused
operation changes nothing, the starving head is never passed...).

Time is a number the machine keeps; it only moves forward. No sleeps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bitshare.daemon.ledger import (
    Gpu,
    Lease,
    LeaseSpec,
    LeaseState,
    Ledger,
    Policy,
    Size,
)
from bitshare.errors import REFUSALS, NoLease, NotFound, Unsatisfiable, UsageError, WrongState

QUEUED = LeaseState.QUEUED
ACTIVE = LeaseState.ACTIVE
ENDED_STATES = {
    LeaseState.RELEASED,
    LeaseState.EXPIRED,
    LeaseState.REVOKED,
    LeaseState.CANCELLED,
    LeaseState.TIMED_OUT,
}
# Which states a lease may be in after one operation, given where it was before.
ALLOWED_NEXT = {
    QUEUED: {QUEUED, ACTIVE, LeaseState.CANCELLED, LeaseState.TIMED_OUT},
    ACTIVE: {ACTIVE, LeaseState.RELEASED, LeaseState.EXPIRED, LeaseState.REVOKED},
}
END_KIND = {
    LeaseState.RELEASED: "released",
    LeaseState.EXPIRED: "expired",
    LeaseState.REVOKED: "revoked",
    LeaseState.CANCELLED: "cancelled",
    LeaseState.TIMED_OUT: "timed_out",
}
STATE_KINDS = {"queued", "granted", *END_KIND.values()}


def need_mib(size: Size, capacity: int) -> int:
    """MiB a size asks for on a GPU with this capacity (the model's own arithmetic)."""
    if size.fraction is not None:
        return max(1, math.floor(size.fraction * capacity))
    return size.memory_mib


@dataclass
class ModelLease:
    id: str
    owner: str
    request_id: str
    spec: LeaseSpec
    ttl: float
    seq: int
    created: float
    priority: int
    state: LeaseState | None = None  # None until the submit has been observed
    alloc: dict[int, int] = field(default_factory=dict)
    deadline: float = 0.0  # when the ledger should consider the holder gone
    wait_deadline: float | None = None
    last_active: float = 0.0
    mps_uid: int | None = None


@dataclass
class Pre:
    version: int
    states: dict[str, LeaseState]
    allocs: dict[str, dict[int, int]]
    queued: list[str]


# ----- strategies ----------------------------------------------------------------

sizes = st.one_of(
    st.builds(lambda f: Size(fraction=f), st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.75, 1.0])),
    st.builds(lambda f: Size(fraction=f), st.floats(min_value=0.01, max_value=1.0)),
    st.builds(lambda m: Size(memory_mib=m), st.integers(min_value=1, max_value=4500)),
    st.builds(lambda m: Size(memory_mib=m), st.sampled_from([250, 500, 1000, 2000])),
)
computes = st.one_of(st.just(0), st.integers(min_value=10, max_value=60))
wait_timeouts = st.one_of(st.just(0.0), st.integers(min_value=10, max_value=200).map(float))
# Mostly short steps (holders keep up), sometimes long ones (past every TTL).
time_steps = st.one_of(
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=40, max_value=200),
)
requests = st.fixed_dictionaries(
    {
        "size": sizes,
        "gpu_count": st.integers(min_value=1, max_value=3),
        "compute_pct": computes,
        "priority": st.integers(min_value=0, max_value=2),
        "wait": st.booleans(),
        "wait_timeout_s": wait_timeouts,
        "ttl_s": st.sampled_from([0.0, 50.0]),
        "owner": st.sampled_from(["alice", "bob"]),
        "with_request_id": st.booleans(),
        "local": st.booleans(),  # its processes run on this host (as MPS clients where MPS runs)
    }
)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger: Ledger | None = None
        self.m: dict[str, ModelLease] = {}
        self.caps: dict[int, int] = {}
        self.drained: set[int] = set()
        self.mps: set[int] = set()  # GPUs that run MPS
        self.now = 1000.0
        self.n = 0
        self.max_seq = 0

    # ----- setup ---------------------------------------------------------------

    @initialize(
        gpus=st.lists(
            st.tuples(
                st.one_of(st.sampled_from([1000, 2000, 4000]), st.integers(min_value=500, max_value=8000)),
                st.one_of(st.sampled_from([0, 0, 100, 500]), st.integers(min_value=0, max_value=600)),
            ),
            min_size=1,
            max_size=3,
        ),
        mps=st.lists(st.booleans(), min_size=3, max_size=3),
        ttl=st.sampled_from([30.0, 100.0, 1000.0]),
        aging=st.sampled_from([0.0, 20.0]),
        starvation=st.sampled_from([0.0, 60.0, 120.0]),
        idle=st.sampled_from([0.0, 50.0]),
    )
    def setup(self, gpus, mps, ttl, aging, starvation, idle):
        self.policy = Policy(lease_ttl_s=ttl, aging_s=aging, starvation_s=starvation, idle_timeout_s=idle)
        self.mps = {i for i in range(len(gpus)) if mps[i]}
        self.ledger = Ledger(
            [
                Gpu(index=i, uuid=f"GPU-{i}", name="Test GPU", total_mib=t, reserved_mib=r, mps=i in self.mps)
                for i, (t, r) in enumerate(gpus)
            ],
            self.policy,
        )
        self.caps = {i: max(0, t - r) for i, (t, r) in enumerate(gpus)}

    # ----- the model -----------------------------------------------------------

    def _live(self) -> list[ModelLease]:
        return [ml for ml in self.m.values() if ml.state in (QUEUED, ACTIVE)]

    def _granted(self, index: int) -> int:
        return sum(ml.alloc.get(index, 0) for ml in self.m.values() if ml.state is ACTIVE)

    def _compute(self, index: int) -> int:
        return sum(ml.spec.compute_pct for ml in self.m.values() if ml.state is ACTIVE and index in ml.alloc)

    def _mps_users(self, index: int) -> set[int]:
        return {
            ml.mps_uid for ml in self.m.values() if ml.state is ACTIVE and index in ml.alloc and ml.mps_uid is not None
        }

    def _place(self, spec: LeaseSpec, mps_uid: int | None = None) -> dict[int, int] | None:
        """Best fit: the GPUs with the least left over after the grant, lowest index first;
        an MPS GPU serving another user's MPS clients is not an option."""
        options = []
        for index, cap in sorted(self.caps.items()):
            if index in self.drained:
                continue
            if index in self.mps and mps_uid is not None and self._mps_users(index) - {mps_uid}:
                continue
            need = need_mib(spec.size, cap)
            free = cap - self._granted(index)
            if need > free:
                continue
            if spec.compute_pct and self._compute(index) + spec.compute_pct > 100:
                continue
            options.append((free - need, index, need))
        if len(options) < spec.gpu_count:
            return None
        options.sort()
        return {index: need for _, index, need in options[: spec.gpu_count]}

    def _eff(self, ml: ModelLease) -> float:
        aging = self.policy.aging_s
        if aging <= 0:
            return ml.priority
        return ml.priority + max(0.0, self.now - ml.created) // aging

    def _key(self, ml: ModelLease):
        return (-self._eff(ml), ml.seq)

    def _queue(self) -> list[ModelLease]:
        return sorted((ml for ml in self.m.values() if ml.state is QUEUED), key=self._key)

    def _starving(self, ml: ModelLease) -> bool:
        return self.now - ml.created >= self.policy.starvation_s

    # ----- helpers -------------------------------------------------------------

    def _pick(self, data, live_only: bool = False, prefer: LeaseState | None = None) -> str:
        """A known lease id: any, a live one, or (mostly) one in the state ``prefer``."""
        pool = [ml.id for ml in self._live()] if live_only else list(self.m)
        if prefer is not None:
            preferred = [ml.id for ml in self.m.values() if ml.state is prefer]
            if preferred and data.draw(st.sampled_from([True, True, True, False]), label="prefer"):
                pool = preferred
        return data.draw(st.sampled_from(pool), label="lease")

    def _snapshot(self):
        led = self.ledger
        return (
            led.version,
            tuple(
                (
                    x.id,
                    x.state,
                    tuple(sorted(x.allocations.items())),
                    x.priority,
                    x.expires_at,
                    x.wait_deadline,
                    x.last_active_at,
                    x.granted_at,
                )
                for x in led.live()
            ),
            tuple((g.index, g.drained) for g in led.gpus.values()),
            tuple((i, led.get(i).state, led.get(i).ended_at) for i in self.m),
            tuple(x.id for x in led.queue(self.now)),
        )

    def _attempt(self, fn):
        """Run an operation; a refusal (one of errors.REFUSALS) must leave everything as it was."""
        before = self._snapshot()
        try:
            return fn()
        except REFUSALS as error:
            assert self._snapshot() == before, f"{type(error).__name__} changed the ledger"
            assert self.ledger.take_changes() == [], f"{type(error).__name__} recorded changes"
            return error

    def _pre(self) -> Pre:
        return Pre(
            version=self.ledger.version,
            states={i: ml.state for i, ml in self.m.items()},
            allocs={i: dict(ml.alloc) for i, ml in self.m.items()},
            queued=[ml.id for ml in self.m.values() if ml.state is QUEUED],
        )

    def _post(
        self,
        pre: Pre,
        *,
        scheduled: bool,
        resized: tuple[str, dict[int, int]] | None = None,
        prioritised: str | None = None,
        toggled: bool = False,
    ) -> None:
        """Compare the ledger after an operation with the model and bring the model up to date."""
        led = self.ledger
        now = self.now
        changes = led.take_changes()
        assert led.version - pre.version == len(changes) + (1 if toggled else 0), "version out of step with changes"

        expected_kinds: list[tuple[str, str]] = []
        for lid, ml in self.m.items():
            lease = led.get(lid)
            assert lease.id == lid
            old = pre.states.get(lid)
            new = lease.state
            if old in ENDED_STATES:
                assert new is old, f"{lid} went from {old} to {new}"
                continue
            if old is not None:
                assert new in ALLOWED_NEXT[old], f"{lid}: {old} -> {new} is not allowed"
            if old is ACTIVE and new is ACTIVE:
                if resized is not None and resized[0] == lid:
                    assert lease.allocations == resized[1], f"{lid} resized to {lease.allocations}, not {resized[1]}"
                    ml.alloc = dict(resized[1])
                else:
                    assert lease.allocations == pre.allocs[lid], f"{lid} allocations moved without a resize"
            if new is ACTIVE and old is not ACTIVE:
                # A fresh grant.
                assert lease.granted_at == now
                assert len(lease.allocations) == ml.spec.gpu_count
                for index, mib in lease.allocations.items():
                    assert index in self.caps
                    assert index not in self.drained, f"{lid} granted on drained GPU {index}"
                    assert mib == need_mib(ml.spec.size, self.caps[index])
                ml.alloc = dict(lease.allocations)
                ml.deadline = now + ml.ttl
                ml.last_active = now
                ml.wait_deadline = None
                expected_kinds.append((lid, "granted"))
            elif new is QUEUED and old is None:
                ml.deadline = now + self.policy.lease_ttl_s
                ml.wait_deadline = now + ml.spec.wait_timeout_s if ml.spec.wait_timeout_s > 0 else None
                expected_kinds.append((lid, "queued"))
            elif new in ENDED_STATES:
                assert lease.ended_at == now
                assert old is not None
                expected_kinds.append((lid, END_KIND[new]))
            ml.state = new

        got_state_kinds = sorted((c.lease.id, c.kind) for c in changes if c.kind in STATE_KINDS)
        assert got_state_kinds == sorted(expected_kinds), f"changes {got_state_kinds} != {sorted(expected_kinds)}"
        for c in changes:
            assert c.lease is not led.get(c.lease.id), "a change must hold a copy"
            if c.kind in STATE_KINDS:
                assert c.lease.state is self.m[c.lease.id].state
            elif c.kind == "resized":
                assert resized is not None and c.lease.id == resized[0]
            elif c.kind == "priority":
                assert c.lease.id == prioritised
            else:
                raise AssertionError(f"unexpected change kind {c.kind!r}")
        if resized is not None:
            assert [c.lease.id for c in changes if c.kind == "resized"] == [resized[0]]

        if scheduled:
            self._check_schedule(pre.queued)

    def _check_schedule(self, pre_queued: list[str]) -> None:
        """After the ledger moved its queue at ``now``."""
        # The starving head is never passed: order what was queued before the operation
        # (with the priorities as they are now); the first of those still queued, if it
        # has waited past the limit, has nothing behind it granted.
        order = sorted((self.m[i] for i in pre_queued), key=self._key)
        still = [ml for ml in order if ml.state is QUEUED]
        if still and self._starving(still[0]):
            head = still[0]
            behind = order[order.index(head) + 1 :]
            passed = [ml.id for ml in behind if ml.state is ACTIVE]
            assert not passed, f"{passed} granted ahead of starving head {head.id}"
        # Nothing that may go is left waiting: the head does not fit, and unless it is
        # starving (and so blocks backfill), nothing else in the queue fits either.
        queue = self._queue()
        if queue:
            head = queue[0]
            assert self._place(head.spec, head.mps_uid) is None, f"head {head.id} fits but was left queued"
            if not self._starving(head):
                for ml in queue[1:]:
                    fits = self._place(ml.spec, ml.mps_uid) is not None
                    assert not fits, f"{ml.id} fits, head {head.id} is not starving, yet it waits"

    # ----- rules ---------------------------------------------------------------

    @rule(request=requests)
    def submit(self, request):
        self._submit(request)

    @rule(batch=st.lists(requests, min_size=2, max_size=8))
    def submit_batch(self, batch):
        """Several requests arrive at the same moment."""
        for request in batch:
            self._submit(request)

    def _submit(self, request: dict) -> None:
        lid = f"L{self.n}"
        self.n += 1
        request = dict(request)  # (the generated value is shown on failure: leave it whole)
        owner = request.pop("owner")
        request_id = f"req-{lid}" if request.pop("with_request_id") else ""
        local = request.pop("local")
        spec = LeaseSpec(**request)
        mps_uid = {"alice": 1001, "bob": 1002}[owner] if local and spec.gpu_count == 1 else None

        fitting = sum(1 for cap in self.caps.values() if need_mib(spec.size, cap) <= cap)
        unsatisfiable = fitting < spec.gpu_count
        placement = self._place(spec, mps_uid)
        queue = self._queue()
        head = queue[0] if queue else None
        blocked = head is not None and self._starving(head) and not spec.priority > self._eff(head)

        pre = self._pre()
        result = self._attempt(
            lambda: self.ledger.submit(lid, owner, spec, self.now, request_id=request_id, mps_uid=mps_uid)
        )
        if unsatisfiable:
            assert isinstance(result, Unsatisfiable), f"expected Unsatisfiable, got {result!r}"
            return
        if placement is not None and not blocked:
            assert isinstance(result, Lease), f"expected a grant, got {result!r}"
            assert result.state is ACTIVE
            assert result.allocations == placement, f"placed {result.allocations}, best fit is {placement}"
        elif spec.wait:
            assert isinstance(result, Lease), f"expected a queued request, got {result!r}"
            assert result.state is QUEUED
        else:
            assert isinstance(result, NoLease), f"expected NoLease, got {result!r}"
            return
        assert result.seq > self.max_seq
        self.max_seq = result.seq
        assert result.created_at == self.now
        self.m[lid] = ModelLease(
            id=lid,
            owner=owner,
            request_id=request_id,
            spec=spec,
            ttl=spec.ttl_s or self.policy.lease_ttl_s,
            seq=result.seq,
            created=self.now,
            priority=spec.priority,
            mps_uid=mps_uid,
        )
        self._post(pre, scheduled=False)

    @precondition(lambda self: self.m)
    @rule(data=st.data(), live_only=st.booleans())
    def release(self, data, live_only):
        if live_only and not self._live():
            return
        lid = self._pick(data, live_only)
        was_live = self.m[lid].state in (QUEUED, ACTIVE)
        pre = self._pre()
        result = self._attempt(lambda: self.ledger.release(lid, self.now))
        assert isinstance(result, Lease), f"release raised {result!r}"
        self._post(pre, scheduled=was_live)
        if was_live:
            expected = LeaseState.RELEASED if pre.states[lid] is ACTIVE else LeaseState.CANCELLED
            assert self.m[lid].state is expected

    @precondition(lambda self: self.m)
    @rule(data=st.data())
    def heartbeat(self, data):
        lid = self._pick(data, prefer=ACTIVE)
        ml = self.m[lid]
        pre = self._pre()
        result = self._attempt(lambda: self.ledger.heartbeat(lid, self.now))
        if ml.state in ENDED_STATES:
            assert isinstance(result, WrongState), f"heartbeat on ended lease gave {result!r}"
            return
        assert isinstance(result, Lease), f"heartbeat raised {result!r}"
        ttl = ml.ttl if ml.state is ACTIVE else self.policy.lease_ttl_s
        ml.deadline = max(ml.deadline, self.now + ttl)
        self._post(pre, scheduled=False)

    @rule()
    def heartbeat_all(self):
        """Every holder still alive says so."""
        pre = self._pre()
        for ml in self._live():
            self.ledger.heartbeat(ml.id, self.now)
            ttl = ml.ttl if ml.state is ACTIVE else self.policy.lease_ttl_s
            ml.deadline = max(ml.deadline, self.now + ttl)
        self._post(pre, scheduled=False)

    @precondition(lambda self: self.m)
    @rule(data=st.data())
    def note_activity(self, data):
        lid = self._pick(data, prefer=ACTIVE)
        ml = self.m[lid]
        pre = self._pre()
        self.ledger.note_activity(lid, self.now)
        if ml.state is ACTIVE:
            ml.last_active = max(ml.last_active, self.now)
        self._post(pre, scheduled=False)

    @precondition(lambda self: self.m)
    @rule(data=st.data(), reason=st.sampled_from(["admin", "policy"]))
    def revoke(self, data, reason):
        lid = self._pick(data)
        was = self.m[lid].state
        pre = self._pre()
        result = self._attempt(lambda: self.ledger.revoke(lid, reason, self.now))
        if was in ENDED_STATES:
            assert isinstance(result, WrongState), f"revoke of ended lease gave {result!r}"
            return
        assert isinstance(result, Lease), f"revoke raised {result!r}"
        self._post(pre, scheduled=True)
        expected = LeaseState.REVOKED if was is ACTIVE else LeaseState.CANCELLED
        assert self.m[lid].state is expected
        assert self.ledger.get(lid).end_reason == reason

    @precondition(lambda self: self.m)
    @rule(data=st.data(), size=sizes)
    def resize(self, data, size):
        lid = self._pick(data, prefer=ACTIVE)
        ml = self.m[lid]
        pre = self._pre()
        result = self._attempt(lambda: self.ledger.resize(lid, size, self.now))
        if ml.state is not ACTIVE:
            assert isinstance(result, WrongState), f"resize of {ml.state} lease gave {result!r}"
            return
        want = {i: need_mib(size, self.caps[i]) for i in ml.alloc}
        fits = all(want[i] - old <= self.caps[i] - self._granted(i) for i, old in ml.alloc.items())
        grows = any(want[i] > old for i, old in ml.alloc.items())
        queue = self._queue()
        held_back = grows and (
            any(i in self.drained for i, old in ml.alloc.items() if want[i] > old)
            or bool(queue and self._starving(queue[0]))
        )
        if fits and held_back and not any(want[i] > self.caps[i] for i in want):
            # Growing is a new grant: refused on a drained GPU or while a starving head waits.
            assert isinstance(result, NoLease), f"growth past a drain or a starving head gave {result!r}"
            return
        if not fits:
            assert isinstance(result, (NoLease, Unsatisfiable)), f"resize that does not fit gave {result!r}"
            over = [i for i in want if want[i] > self.caps[i]]
            if not over:
                assert isinstance(result, NoLease), f"expected NoLease, got {result!r}"
            elif len(want) == 1:
                assert isinstance(result, Unsatisfiable), f"expected Unsatisfiable, got {result!r}"
            return
        assert isinstance(result, Lease), f"resize that fits raised {result!r}"
        self._post(pre, scheduled=True, resized=(lid, want))

    @precondition(lambda self: self.m)
    @rule(data=st.data(), priority=st.integers(min_value=-1, max_value=3))
    def set_priority(self, data, priority):
        lid = self._pick(data, prefer=QUEUED)
        ml = self.m[lid]
        pre = self._pre()
        result = self._attempt(lambda: self.ledger.set_priority(lid, priority, self.now))
        if ml.state is not QUEUED:
            assert isinstance(result, WrongState), f"set_priority on {ml.state} lease gave {result!r}"
            return
        assert isinstance(result, Lease), f"set_priority raised {result!r}"
        assert result.priority == priority
        ml.priority = priority
        self._post(pre, scheduled=True, prioritised=lid)

    @rule(data=st.data(), drained=st.booleans())
    def drain(self, data, drained):
        index = data.draw(st.sampled_from(sorted(self.caps)), label="gpu")
        toggled = (index in self.drained) != drained
        pre = self._pre()
        result = self._attempt(lambda: self.ledger.drain(index, drained, self.now))
        assert isinstance(result, Gpu), f"drain raised {result!r}"
        assert result.drained is drained
        if drained:
            self.drained.add(index)
        else:
            self.drained.discard(index)
        self._post(pre, scheduled=toggled and not drained, toggled=toggled)

    @rule()
    def unknown_ids(self):
        """Operations on ids and GPUs that do not exist are refused and change nothing."""
        led = self.ledger
        for op in (
            lambda: led.get("nope"),
            lambda: led.release("nope", self.now),
            lambda: led.heartbeat("nope", self.now),
            lambda: led.revoke("nope", "x", self.now),
            lambda: led.resize("nope", Size(memory_mib=1), self.now),
            lambda: led.set_priority("nope", 1, self.now),
        ):
            assert isinstance(self._attempt(op), NotFound)
        assert isinstance(self._attempt(lambda: led.drain(max(self.caps) + 1, True, self.now)), UsageError)
        if self.m:
            taken = next(iter(self.m))
            spec = LeaseSpec(size=Size(memory_mib=1))
            assert isinstance(self._attempt(lambda: led.submit(taken, "u", spec, self.now)), UsageError)
        assert led.find_request("nobody", "nothing") is None

    @rule(dt=time_steps)
    def advance(self, dt):
        """Time passes with no tick (the daemon's timer has not fired yet)."""
        self.now += dt

    @rule(dt=time_steps, keepalive=st.booleans())
    def tick(self, dt, keepalive):
        if keepalive:  # every holder heartbeats just before the timer fires
            self.heartbeat_all()
        self.now += dt
        self._tick()

    def _tick(self) -> None:
        now = self.now
        idle = self.policy.idle_timeout_s
        expected_end: dict[str, LeaseState] = {}
        for ml in self._live():
            if ml.state is ACTIVE:
                if ml.deadline <= now:
                    expected_end[ml.id] = LeaseState.EXPIRED
                elif idle > 0 and now - ml.last_active >= idle:
                    expected_end[ml.id] = LeaseState.REVOKED
            elif ml.wait_deadline is not None and ml.wait_deadline <= now:
                expected_end[ml.id] = LeaseState.TIMED_OUT
            elif ml.deadline <= now:
                expected_end[ml.id] = LeaseState.CANCELLED
        was_live = {ml.id: ml.state for ml in self._live()}
        pre = self._pre()
        self.ledger.tick(now)
        self._post(pre, scheduled=True)
        for lid, was in was_live.items():
            state = self.m[lid].state
            if lid in expected_end:
                assert state is expected_end[lid], f"{lid} should be {expected_end[lid]} at {now}, is {state}"
                if state is LeaseState.REVOKED:
                    assert self.ledger.get(lid).end_reason == "idle"
            elif was is ACTIVE:
                assert state is ACTIVE, f"{lid} ended at {now} before its time"
            else:
                assert state in (QUEUED, ACTIVE), f"{lid} ended at {now} before its time"

    @precondition(lambda self: self._live())
    @rule(data=st.data(), just_before=st.booleans(), keepalive=st.booleans())
    def tick_at_next_event(self, data, just_before, keepalive):
        """Tick exactly when (or just before) the next expiry, wait deadline or idle limit falls due.

        With ``keepalive`` every holder heartbeats a second before the tick (so that
        only the other limits can fall due)."""
        idle = self.policy.idle_timeout_s
        shift = 1 if just_before else 0
        moments: dict[str, list[float]] = {}
        for ml in self._live():
            kind = "expiry" if ml.state is ACTIVE else "requester"
            moments.setdefault(kind, []).append(ml.deadline)
            if ml.state is ACTIVE and idle > 0:
                moments.setdefault("idle", []).append(ml.last_active + idle)
            if ml.state is QUEUED:
                if ml.wait_deadline is not None:
                    moments.setdefault("wait", []).append(ml.wait_deadline)
                moments.setdefault("starvation", []).append(ml.created + self.policy.starvation_s)
        due = {kind: min(t) for kind, ts in moments.items() if (t := [m for m in ts if m - shift >= self.now])}
        if not due:
            return
        kind = data.draw(st.sampled_from(sorted(due)), label="event")
        target = due[kind] - shift
        if keepalive:
            self.now = max(self.now, target - 1)
            self.heartbeat_all()
        self.now = target
        self._tick()

    @rule()
    def restart(self):
        """The daemon restarts: a fresh ledger restores the saved leases."""
        # The daemon's timer fires at the same moment the state is saved, so the old
        # ledger has moved its queue for ``now`` (otherwise the new one would, legitimately).
        self._tick()
        old = self.ledger
        ended = [old.get(i).copy() for i, ml in self.m.items() if ml.state in ENDED_STATES]
        saved = [x.copy() for x in old.live()] + ended
        gpus = [dataclasses.replace(g) for g in old.gpus.values()]
        new = Ledger(gpus, self.policy)
        new.restore(saved, self.now)
        new.check_invariants()
        assert new.take_changes() == [], "restoring a settled ledger changed leases"
        for index in self.caps:
            assert new.granted_mib(index) == old.granted_mib(index), f"GPU {index} granted memory changed"
            assert new.granted_compute(index) == old.granted_compute(index)
        assert {x.id for x in new.active()} == {x.id for x in old.active()}
        assert [x.id for x in new.queue(self.now)] == [x.id for x in old.queue(self.now)]
        for lid in self.m:
            before, after = old.get(lid), new.get(lid)
            assert after.state is before.state
            assert after.allocations == before.allocations
            assert after is not before
        # The copies handed in are not aliased.
        for lease in saved:
            lease.allocations.clear()
        for ml in self.m.values():
            if ml.state is ACTIVE:
                assert new.get(ml.id).allocations == ml.alloc
        # Holders get one fresh TTL from now; idle time restarts.
        for ml in self._live():
            if ml.state is ACTIVE:
                ml.deadline = self.now + ml.ttl
                ml.last_active = self.now
            else:
                ml.deadline = self.now + self.policy.lease_ttl_s
        self.ledger = new
        # New submits must still get later sequence numbers.
        self.max_seq = max([self.max_seq] + [x.seq for x in saved])

    # ----- invariants ----------------------------------------------------------

    @invariant()
    def ledger_is_consistent(self):
        if self.ledger is not None:
            self.ledger.check_invariants()

    @invariant()
    def capacity_is_never_exceeded(self):
        if self.ledger is None:
            return
        for index, cap in self.caps.items():
            granted = self.ledger.granted_mib(index)
            assert granted <= cap, f"GPU {index}: {granted} MiB granted of {cap}"
            assert granted == self._granted(index)
            assert self.ledger.free_mib(index) == cap - granted
            assert self.ledger.granted_compute(index) == self._compute(index) <= 100

    @invariant()
    def every_lease_is_known_and_in_one_state(self):
        if self.ledger is None:
            return
        led = self.ledger
        live_ids = [x.id for x in led.live()]
        assert len(live_ids) == len(set(live_ids))
        assert set(live_ids) == {ml.id for ml in self._live()}
        by_seq = sorted(self._live(), key=lambda m: m.seq)
        assert [x.id for x in led.active()] == [ml.id for ml in by_seq if ml.state is ACTIVE]
        for lid, ml in self.m.items():
            lease = led.get(lid)
            assert lease.state is ml.state, f"{lid}: ledger says {lease.state}, model {ml.state}"
            assert (lid in live_ids) == (not lease.state.ended)
            if ml.state is ACTIVE:
                assert lease.allocations == ml.alloc
            if ml.request_id:
                found = led.find_request(ml.owner, ml.request_id)
                assert found is not None and found.id == lid

    @invariant()
    def queue_never_loses_a_request(self):
        if self.ledger is None:
            return
        queue = [x.id for x in self.ledger.queue(self.now)]
        expected = [ml.id for ml in self._queue()]
        assert queue == expected, f"queue {queue} != model {expected}"
        assert self.ledger.queue_positions(self.now) == {lid: i + 1 for i, lid in enumerate(expected)}

    @invariant()
    def timers_match_the_model(self):
        if self.ledger is None:
            return
        for ml in self._live():
            lease = self.ledger.get(ml.id)
            assert lease.expires_at == ml.deadline, f"{ml.id} expires at {lease.expires_at}, model {ml.deadline}"
            if ml.state is QUEUED:
                assert lease.wait_deadline == ml.wait_deadline
                assert lease.allocations == {}
            else:
                assert lease.wait_deadline is None
                assert lease.last_active_at == ml.last_active


LedgerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # On a failure, shrink only the first bug found and skip the (slow) explain phase,
    # so that a failing run still reports well inside the suite's pytest timeout.
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
TestLedgerMachine = LedgerMachine.TestCase
