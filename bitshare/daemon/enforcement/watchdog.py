"""The watchdog's policy: which leases use more than their partition, and what to do about it.

Pure logic, like the ledger: measurements and time come in, verdicts go out. A lease
over its partition is warned at once and, when the policy enforces, ended once it has
stayed over for the grace period. A lease that comes back within its partition is
cleared, and a later excess starts a new grace period.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import WATCHDOG_MODES


@dataclass(frozen=True)
class WatchdogPolicy:
    mode: str = "enforce"  # one of WATCHDOG_MODES
    grace_s: float = 10.0
    context_mib: int = 0  # allowed per process past the partition (its CUDA context)

    def __post_init__(self) -> None:
        if self.mode not in WATCHDOG_MODES:
            raise ValueError(f"watchdog must be one of {', '.join(WATCHDOG_MODES)}, got {self.mode!r}")
        if not self.grace_s >= 0:
            raise ValueError(f"grace must be >= 0 seconds, got {self.grace_s:g}")


@dataclass
class LeaseUse:
    """What one lease's processes hold, per GPU index."""

    used_mib: dict[int, int] = field(default_factory=dict)
    processes: dict[int, int] = field(default_factory=dict)  # how many processes on each GPU

    def add(self, gpu_index: int, used_mib: int) -> None:
        self.used_mib[gpu_index] = self.used_mib.get(gpu_index, 0) + used_mib
        self.processes[gpu_index] = self.processes.get(gpu_index, 0) + 1


@dataclass(frozen=True)
class Verdict:
    kind: str  # warn (now over), end (over past the grace period), clear (back within)
    lease_id: str
    detail: str


class Watchdog:
    def __init__(self, policy: WatchdogPolicy) -> None:
        self.policy = policy
        self.over_since: dict[str, float] = {}
        self._ended: set[str] = set()

    def deadline(self, lease_id: str) -> float | None:
        """When an over-limit lease will be ended (None when it is within, or nothing is enforced)."""
        since = self.over_since.get(lease_id)
        if since is None or self.policy.mode != "enforce":
            return None
        return since + self.policy.grace_s

    def judge(self, now: float, partitions: dict[str, dict[int, int]], use: dict[str, LeaseUse]) -> list[Verdict]:
        """``partitions``: every active lease's MiB per GPU index; ``use``: measured, per lease."""
        if self.policy.mode == "off":
            self.over_since.clear()
            return []
        verdicts: list[Verdict] = []
        for lease_id in list(self.over_since):
            if lease_id not in partitions:
                del self.over_since[lease_id]
        self._ended &= set(partitions)
        for lease_id, partition in partitions.items():
            excess = self._worst_excess(partition, use.get(lease_id))
            since = self.over_since.get(lease_id)
            if excess is None:
                if since is not None:
                    del self.over_since[lease_id]
                    verdicts.append(Verdict("clear", lease_id, "back within its partition"))
                continue
            index, used, allowed = excess
            what = f"uses {used} MiB on GPU {index}, over its {allowed} MiB partition"
            if since is None:
                self.over_since[lease_id] = now
                if self.policy.mode == "enforce":
                    what += f"; it will be ended in {self.policy.grace_s:g}s unless it frees memory"
                verdicts.append(Verdict("warn", lease_id, what))
            elif self.policy.mode == "enforce" and now - since >= self.policy.grace_s and lease_id not in self._ended:
                self._ended.add(lease_id)
                verdicts.append(Verdict("end", lease_id, f"{what} for {now - since:.0f}s"))
        return verdicts

    def _worst_excess(self, partition: dict[int, int], use: LeaseUse | None) -> tuple[int, int, int] | None:
        """(GPU index, used MiB, allowed MiB) where the lease is furthest over, or None."""
        if use is None:
            return None
        worst: tuple[int, int, int] | None = None
        worst_by = 0
        for index, used in use.used_mib.items():
            partition_mib = partition.get(index, 0)
            allowed = partition_mib + self.policy.context_mib * use.processes.get(index, 0)
            if used - allowed > worst_by:
                worst_by = used - allowed
                worst = (index, used, partition_mib)
        return worst
