"""Prometheus metrics of one daemon: counted lease transitions (a ledger listener) and the text
exposition of GPUs, leases and the queue (pure: it renders what it is given)."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ...protocol.v1 import bitshare_pb2 as pb
from ..state.model import Change, ChangeKind

MIB = 1 << 20
WAIT_BUCKETS_S = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
TRANSITIONS = tuple(kind for kind in ChangeKind if kind is not ChangeKind.PRIORITY)  # counted, by label


@dataclass
class LeaseCounters:
    """Transitions since the daemon started, and how long granted requests waited in the queue."""

    transitions: Counter[ChangeKind] = field(default_factory=Counter)
    wait_buckets: list[int] = field(default_factory=lambda: [0] * (len(WAIT_BUCKETS_S) + 1))
    wait_sum_s: float = 0.0

    def __call__(self, changes: list[Change]) -> None:
        for change in changes:
            self.transitions[change.kind] += 1
            lease = change.lease
            if change.kind is ChangeKind.GRANTED and lease.granted_at is not None:
                waited = max(0.0, lease.granted_at - lease.created_at)
                self.wait_buckets[bisect.bisect_left(WAIT_BUCKETS_S, waited)] += 1
                self.wait_sum_s += waited


def render(
    gpus: Sequence[pb.Gpu],
    leases: Sequence[pb.Lease],
    counters: LeaseCounters,
    now: float,
    process: tuple[float, int] | None = None,
) -> str:
    """The Prometheus text format (0.0.4). ``process``: the daemon's CPU seconds and resident bytes."""
    out = _Writer()
    gpu_labels = [({"gpu": str(g.index), "uuid": g.uuid, "name": g.name}, g) for g in gpus]
    out.family(
        "bitshare_gpu_memory_total_bytes", "gauge", "Memory of each GPU.",
        [(labels, g.total_mib * MIB) for labels, g in gpu_labels],
    )  # fmt: skip
    out.family(
        "bitshare_gpu_memory_granted_bytes", "gauge", "Memory granted to leases on each GPU.",
        [(labels, g.granted_mib * MIB) for labels, g in gpu_labels],
    )  # fmt: skip
    out.family(
        "bitshare_gpu_memory_used_bytes", "gauge", "Memory in use on each GPU, as measured.",
        [(labels, g.used_mib * MIB) for labels, g in gpu_labels],
    )  # fmt: skip
    out.family(
        "bitshare_gpu_utilization_ratio", "gauge", "Share of time each GPU was busy, last sample.",
        [(labels, g.utilization_pct / 100) for labels, g in gpu_labels],
    )  # fmt: skip
    out.family(
        "bitshare_gpu_drained", "gauge", "1 when the GPU takes no new leases.",
        [(labels, int(g.drained)) for labels, g in gpu_labels],
    )  # fmt: skip
    active = [lease for lease in leases if lease.state == pb.LEASE_STATE_ACTIVE]
    queued = [lease for lease in leases if lease.state == pb.LEASE_STATE_QUEUED]
    sampled = [lease for lease in active if lease.usage.HasField("sampled_at")]
    out.family(
        "bitshare_lease_partition_bytes", "gauge", "Memory each active lease holds on each of its GPUs.",
        [
            ({"lease": lease.id, "owner": lease.owner, "gpu": str(a.gpu_index)}, a.memory_mib * MIB)
            for lease in active
            for a in lease.allocations
        ],
    )  # fmt: skip
    out.family(
        "bitshare_lease_memory_used_bytes", "gauge", "Memory each active lease's processes use (all GPUs).",
        [({"lease": lease.id, "owner": lease.owner}, lease.usage.used_mib * MIB) for lease in sampled],
    )  # fmt: skip
    out.family(
        "bitshare_lease_sm_ratio", "gauge", "Share of the GPU's time each lease's kernels ran, last sample.",
        [({"lease": lease.id, "owner": lease.owner}, lease.usage.sm_pct / 100) for lease in sampled],
    )  # fmt: skip
    out.family("bitshare_leases_active", "gauge", "Leases granted and not ended.", [({}, len(active))])
    out.family("bitshare_queue_length", "gauge", "Requests waiting in the queue.", [({}, len(queued))])
    waits = [max(0.0, now - lease.created_at.ToNanoseconds() / 1e9) for lease in queued]
    out.family(
        "bitshare_queue_oldest_wait_seconds", "gauge", "How long the longest-waiting request has waited.",
        [({}, max(waits, default=0.0))],
    )  # fmt: skip
    out.family(
        "bitshare_lease_transitions_total", "counter", "Lease transitions since the daemon started, by kind.",
        [({"kind": kind.value}, counters.transitions[kind]) for kind in TRANSITIONS],
    )  # fmt: skip
    buckets, cumulative = [], 0
    for bound, count in zip((*WAIT_BUCKETS_S, float("inf")), counters.wait_buckets, strict=True):
        cumulative += count
        buckets.append(({"le": _number(bound)}, cumulative))
    out.family(
        "bitshare_queue_wait_seconds", "histogram", "Time granted requests waited (0 when granted at once).",
        buckets, ({}, counters.wait_sum_s), ({}, cumulative),
    )  # fmt: skip
    if process is not None:
        cpu_s, rss = process
        out.family("process_cpu_seconds_total", "counter", "CPU time of bitshared.", [({}, cpu_s)])
        out.family("process_resident_memory_bytes", "gauge", "Resident memory of bitshared.", [({}, rss)])
    return out.text()


class _Writer:
    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Sequence[tuple[dict[str, str], float]],
        histogram_sum: tuple[dict[str, str], float] | None = None,
        histogram_count: tuple[dict[str, str], float] | None = None,
    ) -> None:
        """One metric family, its samples together (as the text format requires)."""
        self._lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        suffix = "_bucket" if kind == "histogram" else ""
        self._lines += [f"{name}{suffix}{_labels(labels.items())} {_number(value)}" for labels, value in samples]
        for tail, sample in (("_sum", histogram_sum), ("_count", histogram_count)):
            if sample is not None:
                self._lines.append(f"{name}{tail}{_labels(sample[0].items())} {_number(sample[1])}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in pairs)
    return f"{{{inner}}}" if inner else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))
