"""What the ledger holds: lease states, specs, sizes, GPUs, leases, the policy, and the changes it reports.

Plain data with its own validation (refused with the errors of bitshare/errors.py); no I/O, no
clock, no gRPC types.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from enum import Enum

from ...errors import UsageError


class LeaseState(str, Enum):
    QUEUED = "queued"
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"
    REVOKED = "revoked"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def ended(self) -> bool:
        return self not in (LeaseState.QUEUED, LeaseState.ACTIVE)


class ChangeKind(str, Enum):
    """What happened to a lease: the one name each edge (store, log, watchers, metrics) maps from."""

    QUEUED = "queued"
    GRANTED = "granted"
    RESIZED = "resized"
    PRIORITY = "priority"
    RELEASED = "released"
    EXPIRED = "expired"
    REVOKED = "revoked"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def ends(self) -> bool:
        return self in _ENDING

    @classmethod
    def ending(cls, state: LeaseState) -> ChangeKind:
        """The change that leaves a lease in the ended ``state``."""
        return cls(state.value)


_ENDING = frozenset(
    {ChangeKind.RELEASED, ChangeKind.EXPIRED, ChangeKind.REVOKED, ChangeKind.CANCELLED, ChangeKind.TIMED_OUT}
)


@dataclass(frozen=True)
class GpuFilter:
    name: str = ""
    min_memory_mib: int = 0
    indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class Size:
    """A partition size per GPU: a fraction of its capacity, or MiB."""

    fraction: float | None = None
    memory_mib: int | None = None

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.memory_mib is None):
            raise UsageError("give exactly one of a fraction or a size in MiB")
        if self.fraction is not None and not (0.0 < self.fraction <= 1.0 and math.isfinite(self.fraction)):
            raise UsageError(f"fraction must be in (0, 1], got {self.fraction:g}")
        if self.memory_mib is not None and self.memory_mib <= 0:
            raise UsageError(f"memory must be a positive number of MiB, got {self.memory_mib}")

    def mib_on(self, capacity_mib: int) -> int:
        if self.fraction is not None:
            return max(1, math.floor(self.fraction * capacity_mib))
        assert self.memory_mib is not None
        return self.memory_mib

    def describe(self) -> str:
        return f"{self.fraction:g} of a GPU" if self.fraction is not None else f"{self.memory_mib} MiB"


@dataclass(frozen=True)
class LeaseSpec:
    size: Size
    gpu_count: int = 1
    compute_pct: int = 0
    filter: GpuFilter = GpuFilter()
    priority: int = 0
    wait: bool = True
    wait_timeout_s: float = 0.0
    ttl_s: float = 0.0

    def __post_init__(self) -> None:
        if self.gpu_count < 1:
            raise UsageError(f"GPU count must be at least 1, got {self.gpu_count}")
        if not 0 <= self.compute_pct <= 100:
            raise UsageError(f"compute share must be in 1..100 percent, got {self.compute_pct}")
        if not (self.wait_timeout_s >= 0 and math.isfinite(self.wait_timeout_s)):
            raise UsageError(f"wait timeout must be >= 0 seconds, got {self.wait_timeout_s:g}")
        if not (self.ttl_s >= 0 and math.isfinite(self.ttl_s)):
            raise UsageError(f"lease TTL must be >= 0 seconds, got {self.ttl_s:g}")


@dataclass
class Gpu:
    index: int
    uuid: str
    name: str
    total_mib: int
    reserved_mib: int = 0
    drained: bool = False
    # Runs MPS: its one MPS server serves one Unix user at a time, so leases whose
    # processes are MPS clients (Lease.mps_uid) of different users cannot share it.
    mps: bool = False

    @property
    def capacity_mib(self) -> int:
        return max(0, self.total_mib - self.reserved_mib)


@dataclass
class Lease:
    id: str
    owner: str
    spec: LeaseSpec
    state: LeaseState
    seq: int
    created_at: float
    priority: int
    request_id: str = ""
    client_host: str = ""
    command: str = ""
    allocations: dict[int, int] = field(default_factory=dict)  # GPU index -> MiB
    granted_at: float | None = None
    ended_at: float | None = None
    end_reason: str = ""
    expires_at: float = 0.0
    wait_deadline: float | None = None
    last_active_at: float = 0.0
    ttl_s: float = 0.0
    mps_uid: int | None = None  # the Unix user whose processes will be MPS clients on its GPU
    slurm_job: str = ""  # the Slurm job it was made for: its processes are the job's

    def copy(self) -> Lease:
        duplicate = copy.copy(self)
        duplicate.allocations = dict(self.allocations)
        return duplicate


@dataclass(frozen=True)
class Policy:
    lease_ttl_s: float = 30.0  # heartbeat silence before a lease expires
    max_ttl_s: float = 7 * 24 * 3600.0  # longest TTL a lease (a session) may ask for
    aging_s: float = 60.0  # a waiting request gains one priority point per this
    starvation_s: float = 120.0  # after this the head of the queue blocks backfill
    idle_timeout_s: float = 0.0  # 0: idle reclaim off


@dataclass(frozen=True)
class Change:
    """A lease as it is after an operation, and what happened to it."""

    lease: Lease
    kind: ChangeKind
    detail: str = ""
