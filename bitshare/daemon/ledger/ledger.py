"""The lease ledger: capacity, grants, the queue, resize, revoke and expiry.

Pure logic. No I/O, no clock (every operation takes ``now`` in seconds), no gRPC
types. The daemon wires persistence and notifications around it: after each
operation it takes the changed leases with :meth:`Ledger.take_changes`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from ...errors import NoLease, NotFound, Unsatisfiable, UsageError, WrongState
from .model import (
    Change,
    ChangeKind,
    Gpu,
    GpuFilter,
    Lease,
    LeaseSpec,
    LeaseState,
    Policy,
    Size,
)

ENDED_KEPT = 4096  # ended leases kept in memory for lookups and idempotent retries


class Ledger:
    """Every lease of one daemon and the capacity of its GPUs."""

    def __init__(self, gpus: Iterable[Gpu], policy: Policy = Policy()) -> None:
        self.gpus: dict[int, Gpu] = {g.index: g for g in gpus}
        if not self.gpus:
            raise ValueError("a ledger needs at least one GPU")
        self.policy = policy
        self._live: dict[str, Lease] = {}
        self._queued: dict[str, Lease] = {}
        # Running totals of what active leases hold, per GPU (kept in step by _grant/_end/resize).
        self._granted: dict[int, int] = {i: 0 for i in self.gpus}
        self._compute: dict[int, int] = {i: 0 for i in self.gpus}
        self._mps_users: dict[int, dict[int, int]] = {i: {} for i in self.gpus}  # GPU -> uid -> leases
        self._ended: OrderedDict[str, Lease] = OrderedDict()
        self._by_request: dict[tuple[str, str], str] = {}
        self._seq = 0
        self._changes: list[Change] = []
        self.version = 0  # grows with every change

    # ----- queries -------------------------------------------------------------

    def get(self, lease_id: str) -> Lease:
        lease = self._live.get(lease_id) or self._ended.get(lease_id)
        if lease is None:
            raise NotFound(f"no lease {lease_id!r}")
        return lease

    def find_request(self, owner: str, request_id: str) -> Lease | None:
        lease_id = self._by_request.get((owner, request_id))
        if lease_id is None:
            return None
        return self._live.get(lease_id) or self._ended.get(lease_id)

    def live(self) -> list[Lease]:
        return sorted(self._live.values(), key=lambda lease: lease.seq)

    def recently_ended(self, limit: int) -> list[Lease]:
        """The most recently ended leases still remembered, oldest first."""
        ended = list(self._ended.values())
        return ended[-limit:] if limit else []

    def active(self) -> list[Lease]:
        return [lease for lease in self.live() if lease.state is LeaseState.ACTIVE]

    def queue(self, now: float) -> list[Lease]:
        """Queued requests in the order they will be considered."""
        return self.in_queue_order(list(self._queued.values()), now)

    def in_queue_order(self, leases: list[Lease], now: float) -> list[Lease]:
        """The given queued leases in the order the queue considers them (by their own fields)."""
        return sorted(leases, key=lambda lease: (-self._effective_priority(lease, now), lease.seq))

    def queue_positions(self, now: float) -> dict[str, int]:
        return {lease.id: i + 1 for i, lease in enumerate(self.queue(now))}

    def granted_mib(self, gpu_index: int) -> int:
        return self._granted.get(gpu_index, 0)

    def granted_compute(self, gpu_index: int) -> int:
        return self._compute.get(gpu_index, 0)

    def free_mib(self, gpu_index: int) -> int:
        return self.gpus[gpu_index].capacity_mib - self.granted_mib(gpu_index)

    def take_changes(self) -> list[Change]:
        changes, self._changes = self._changes, []
        return changes

    # ----- operations ----------------------------------------------------------

    def submit(
        self,
        lease_id: str,
        owner: str,
        spec: LeaseSpec,
        now: float,
        *,
        request_id: str = "",
        client_host: str = "",
        command: str = "",
        mps_uid: int | None = None,
        slurm_job: str = "",
    ) -> Lease:
        """Grant the request now if it may go ahead, else queue it (or refuse it)."""
        if lease_id in self._live or lease_id in self._ended:
            raise UsageError(f"lease id {lease_id!r} is already used")
        if spec.ttl_s > self.policy.max_ttl_s:
            raise UsageError(f"lease TTL {spec.ttl_s:g}s is over the daemon's limit of {self.policy.max_ttl_s:g}s")
        self._check_satisfiable(spec.size, spec.gpu_count, spec.compute_pct, spec.filter)
        lease = Lease(
            id=lease_id,
            owner=owner,
            spec=spec,
            state=LeaseState.QUEUED,
            seq=self._seq + 1,
            created_at=now,
            priority=spec.priority,
            request_id=request_id,
            client_host=client_host,
            command=command,
            ttl_s=spec.ttl_s or self.policy.lease_ttl_s,
            mps_uid=mps_uid,
            slurm_job=slurm_job,
        )
        placement = self._place(lease)
        if placement is not None and self._may_go_ahead(lease, now):
            self._commit_new(lease)
            self._grant(lease, placement, now)
            return lease
        if not spec.wait:
            raise NoLease(f"no GPU has {spec.size.describe()} free for {spec.gpu_count} GPU(s) now")
        self._commit_new(lease)
        lease.expires_at = now + self.policy.lease_ttl_s
        if spec.wait_timeout_s > 0:
            lease.wait_deadline = now + spec.wait_timeout_s
        self._record(lease, ChangeKind.QUEUED)
        return lease

    def heartbeat(self, lease_id: str, now: float) -> Lease:
        """The holder is alive: push the lease's expiry out."""
        lease = self._require_live(lease_id)
        if lease.state is LeaseState.ACTIVE:
            lease.expires_at = max(lease.expires_at, now + lease.ttl_s)
        else:
            lease.expires_at = max(lease.expires_at, now + self.policy.lease_ttl_s)
        return lease

    def note_activity(self, lease_id: str, now: float) -> None:
        """The lease's work used its GPU at ``now`` (for idle reclaim)."""
        lease = self._live.get(lease_id)
        if lease is not None and lease.state is LeaseState.ACTIVE:
            lease.last_active_at = max(lease.last_active_at, now)

    def release(self, lease_id: str, now: float) -> Lease:
        """The holder gives the lease back (or withdraws its queued request). Idempotent."""
        lease = self.get(lease_id)
        if lease.state.ended:
            return lease
        new_state = LeaseState.RELEASED if lease.state is LeaseState.ACTIVE else LeaseState.CANCELLED
        self._end(lease, new_state, "released by holder" if new_state is LeaseState.RELEASED else "withdrawn", now)
        self._schedule(now)
        return lease

    def revoke(self, lease_id: str, reason: str, now: float) -> Lease:
        lease = self._require_live(lease_id)
        if lease.state is LeaseState.ACTIVE:
            self._end(lease, LeaseState.REVOKED, reason, now)
        else:
            self._end(lease, LeaseState.CANCELLED, reason, now)
        self._schedule(now)
        return lease

    def resize(self, lease_id: str, size: Size, now: float) -> Lease:
        """Grow (when there is room) or shrink an active lease on every GPU it holds."""
        lease = self._require_live(lease_id)
        if lease.state is not LeaseState.ACTIVE:
            raise WrongState(f"lease {lease_id} is {lease.state.value}; only an active lease can be resized")
        new: dict[int, int] = {}
        starving = self._starving_head(now)
        for index, old_mib in lease.allocations.items():
            gpu = self.gpus[index]
            want = size.mib_on(gpu.capacity_mib)
            if want > gpu.capacity_mib:
                raise Unsatisfiable(f"GPU {index} has {gpu.capacity_mib} MiB in all; {want} MiB asked")
            if want > old_mib:
                # Growing is a new grant of memory: drained GPUs and a starving head come first.
                if gpu.drained:
                    raise NoLease(f"GPU {index} is drained; leases on it can shrink but not grow")
                if starving is not None:
                    raise NoLease(f"request {starving.id} has waited past the starvation limit; it goes first")
                free = self.free_mib(index)
                if want - old_mib > free:
                    raise NoLease(f"GPU {index} has {free} MiB free; growing to {want} MiB needs {want - old_mib} MiB")
            new[index] = want
        before = ", ".join(f"GPU {i}: {m}" for i, m in lease.allocations.items())
        for index, mib in new.items():
            self._granted[index] += mib - lease.allocations[index]
        lease.allocations = new
        after = ", ".join(f"GPU {i}: {m}" for i, m in new.items())
        self._record(lease, ChangeKind.RESIZED, f"{before} -> {after} MiB")
        self._schedule(now)
        return lease

    def set_priority(self, lease_id: str, priority: int, now: float) -> Lease:
        lease = self._require_live(lease_id)
        if lease.state is not LeaseState.QUEUED:
            raise WrongState(f"lease {lease_id} is {lease.state.value}; only a queued request has a priority")
        lease.priority = priority
        self._record(lease, ChangeKind.PRIORITY, f"priority {priority}")
        self._schedule(now)
        return lease

    def drain(self, gpu_index: int, drained: bool, now: float) -> Gpu:
        """Stop (or resume) granting on a GPU; leases already on it keep running."""
        gpu = self._require_gpu(gpu_index)
        if gpu.drained != drained:
            gpu.drained = drained
            self.version += 1
            if not drained:
                self._schedule(now)
        return gpu

    def tick(self, now: float) -> None:
        """Expire silent holders, time out waiting requests, reclaim idle leases, move the queue."""
        idle = self.policy.idle_timeout_s
        for lease in list(self._live.values()):
            if lease.state is LeaseState.ACTIVE:
                if lease.expires_at <= now:
                    self._end(lease, LeaseState.EXPIRED, f"no heartbeat for {lease.ttl_s:g}s", now)
                elif idle > 0 and now - lease.last_active_at >= idle:
                    self._end(lease, LeaseState.REVOKED, "idle", now)
            elif lease.wait_deadline is not None and lease.wait_deadline <= now:
                self._end(lease, LeaseState.TIMED_OUT, f"waited {lease.spec.wait_timeout_s:g}s", now)
            elif lease.expires_at <= now:
                self._end(lease, LeaseState.CANCELLED, "requester went away", now)
        self._schedule(now)

    def restore(self, leases: Iterable[Lease], now: float) -> None:
        """Load the live leases of a previous run; their holders get one TTL to come back."""
        for stored in sorted(leases, key=lambda lease: lease.seq):
            lease = stored.copy()
            self._seq = max(self._seq, lease.seq)
            if lease.request_id:
                self._by_request[(lease.owner, lease.request_id)] = lease.id
            if lease.state.ended:
                self._remember_ended(lease)
                continue
            self._live[lease.id] = lease
            if lease.state is LeaseState.ACTIVE:
                lease.expires_at = now + lease.ttl_s
                lease.last_active_at = now
                self._hold(lease, +1)
                lost = [i for i in lease.allocations if i not in self.gpus]
                if lost:
                    self._end(lease, LeaseState.REVOKED, f"GPU {lost[0]} is gone", now)
            else:
                self._queued[lease.id] = lease
                lease.expires_at = now + self.policy.lease_ttl_s
        self._fit_restored(now)
        self._schedule(now)

    def _fit_restored(self, now: float) -> None:
        """A GPU that lends less than before (a larger reserve, say) keeps its oldest leases."""
        for index, gpu in self.gpus.items():
            holders = sorted(
                (lease for lease in self.active() if index in lease.allocations),
                key=lambda lease: lease.granted_at or 0.0,
            )
            while self._granted[index] > gpu.capacity_mib:
                newest = holders.pop()
                self._end(newest, LeaseState.REVOKED, f"GPU {index} now lends {gpu.capacity_mib} MiB", now)
            if gpu.mps and len(self._mps_users[index]) > 1:
                first = next(lease.mps_uid for lease in holders if lease.mps_uid is not None)
                for lease in holders:
                    if lease.mps_uid not in (None, first):
                        self._end(lease, LeaseState.REVOKED, f"GPU {index} now runs MPS for another user", now)

    def check_invariants(self) -> None:
        """Raise AssertionError when the ledger is inconsistent (used by tests)."""
        active = [lease for lease in self._live.values() if lease.state is LeaseState.ACTIVE]
        for index, gpu in self.gpus.items():
            held = sum(lease.allocations.get(index, 0) for lease in active)
            compute = sum(lease.spec.compute_pct for lease in active if index in lease.allocations)
            assert self._granted[index] == held, f"GPU {index} total {self._granted[index]} != {held}"
            assert self._compute[index] == compute, f"GPU {index} compute total is off"
            assert held <= gpu.capacity_mib, f"GPU {index} over capacity"
            assert compute <= 100, f"GPU {index} over 100% compute"
            users = {lease.mps_uid for lease in active if index in lease.allocations and lease.mps_uid is not None}
            assert set(self._mps_users[index]) == users, f"GPU {index} MPS users are off"
            assert not gpu.mps or len(users) <= 1, f"GPU {index} serves two users under MPS"
        assert set(self._queued) == {lease.id for lease in self._live.values() if lease.state is LeaseState.QUEUED}
        for lease in self._live.values():
            assert not lease.state.ended, f"{lease.id} ended but live"
            assert lease.id not in self._ended, f"{lease.id} both live and ended"
            if lease.state is LeaseState.ACTIVE:
                assert len(lease.allocations) == lease.spec.gpu_count, f"{lease.id} has wrong GPU count"
            else:
                assert not lease.allocations, f"queued {lease.id} holds memory"
        for lease in self._ended.values():
            assert lease.state.ended, f"{lease.id} in ended but {lease.state}"

    # ----- internals -----------------------------------------------------------

    def _require_live(self, lease_id: str) -> Lease:
        lease = self.get(lease_id)
        if lease.state.ended:
            raise WrongState(f"lease {lease_id} has already ended ({lease.state.value})")
        return lease

    def _require_gpu(self, index: int) -> Gpu:
        gpu = self.gpus.get(index)
        if gpu is None:
            raise UsageError(f"no GPU {index}; this host has GPUs {sorted(self.gpus)}")
        return gpu

    def _matches(self, gpu: Gpu, flt: GpuFilter) -> bool:
        if flt.indices and gpu.index not in flt.indices:
            return False
        if flt.name and flt.name.lower() not in gpu.name.lower():
            return False
        return gpu.total_mib >= flt.min_memory_mib

    def _check_satisfiable(self, size: Size, count: int, compute: int, flt: GpuFilter) -> None:
        for index in flt.indices:
            self._require_gpu(index)
        matching = [g for g in self.gpus.values() if self._matches(g, flt)]
        if len(matching) < count:
            raise Unsatisfiable(f"{count} GPU(s) asked; {len(matching)} on this host match the request")
        fitting = [g for g in matching if size.mib_on(g.capacity_mib) <= g.capacity_mib]
        if len(fitting) < count:
            largest = max(g.capacity_mib for g in matching)
            raise Unsatisfiable(f"{size.describe()} per GPU asked; the largest matching GPU has {largest} MiB to lend")

    def _place(self, lease: Lease) -> dict[int, int] | None:
        """Pick GPUs for the lease, packing: the fullest GPUs that still fit come first."""
        spec = lease.spec
        options: list[tuple[int, int, int]] = []
        for gpu in self.gpus.values():
            if gpu.drained or not self._matches(gpu, spec.filter):
                continue
            need = spec.size.mib_on(gpu.capacity_mib)
            free = self.free_mib(gpu.index)
            if need > free:
                continue
            if spec.compute_pct and self.granted_compute(gpu.index) + spec.compute_pct > 100:
                continue
            if gpu.mps and self._other_mps_user(gpu.index, lease.mps_uid):
                continue
            options.append((free - need, gpu.index, need))
        if len(options) < spec.gpu_count:
            return None
        options.sort()
        return {index: need for _, index, need in options[: spec.gpu_count]}

    def _other_mps_user(self, gpu_index: int, uid: int | None) -> bool:
        """Another user's MPS clients hold the GPU's MPS server."""
        return uid is not None and any(other != uid for other in self._mps_users[gpu_index])

    def _effective_priority(self, lease: Lease, now: float) -> float:
        if self.policy.aging_s <= 0:
            return lease.priority
        return lease.priority + max(0.0, now - lease.created_at) // self.policy.aging_s

    def _starving_head(self, now: float) -> Lease | None:
        queue = self.queue(now)
        if queue and now - queue[0].created_at >= self.policy.starvation_s:
            return queue[0]
        return None

    def _may_go_ahead(self, lease: Lease, now: float) -> bool:
        """A new request may be granted at once unless a starving head would be passed."""
        head = self._starving_head(now)
        if head is None:
            return True
        return (-self._effective_priority(lease, now), lease.seq) < (-self._effective_priority(head, now), head.seq)

    def _commit_new(self, lease: Lease) -> None:
        self._seq = lease.seq
        self._live[lease.id] = lease
        self._queued[lease.id] = lease
        if lease.request_id:
            self._by_request[(lease.owner, lease.request_id)] = lease.id

    def _hold(self, lease: Lease, sign: int) -> None:
        for index, mib in lease.allocations.items():
            self._granted[index] = self._granted.get(index, 0) + sign * mib
            self._compute[index] = self._compute.get(index, 0) + sign * lease.spec.compute_pct
            if lease.mps_uid is not None and index in self._mps_users:
                users = self._mps_users[index]
                users[lease.mps_uid] = users.get(lease.mps_uid, 0) + sign
                if not users[lease.mps_uid]:
                    del users[lease.mps_uid]

    def _grant(self, lease: Lease, placement: dict[int, int], now: float) -> None:
        del self._queued[lease.id]
        lease.state = LeaseState.ACTIVE
        lease.allocations = placement
        self._hold(lease, +1)
        lease.granted_at = now
        lease.wait_deadline = None
        lease.expires_at = now + lease.ttl_s
        lease.last_active_at = now
        self._record(lease, ChangeKind.GRANTED, ", ".join(f"GPU {i}: {m} MiB" for i, m in placement.items()))

    def _end(self, lease: Lease, state: LeaseState, reason: str, now: float) -> None:
        if lease.state is LeaseState.ACTIVE:
            self._hold(lease, -1)
        self._queued.pop(lease.id, None)
        lease.state = state
        lease.ended_at = now
        lease.end_reason = reason
        lease.wait_deadline = None
        del self._live[lease.id]
        self._remember_ended(lease)
        self._record(lease, ChangeKind.ending(state), reason)

    def _remember_ended(self, lease: Lease) -> None:
        self._ended[lease.id] = lease
        while len(self._ended) > ENDED_KEPT:
            old_id, old = self._ended.popitem(last=False)
            key = (old.owner, old.request_id)
            if old.request_id and self._by_request.get(key) == old_id:  # a newer lease may reuse the id
                del self._by_request[key]

    def _schedule(self, now: float) -> None:
        """Grant queued requests in order; a later one that fits may go ahead (backfill)
        unless the head has waited past the starvation limit."""
        head_seen = False
        for lease in self.queue(now):
            placement = self._place(lease)
            if placement is not None:
                self._grant(lease, placement, now)
                continue
            if not head_seen:
                head_seen = True
                if now - lease.created_at >= self.policy.starvation_s:
                    break

    def _record(self, lease: Lease, kind: ChangeKind, detail: str = "") -> None:
        self.version += 1
        self._changes.append(Change(lease.copy(), kind, detail))
