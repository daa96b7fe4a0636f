"""Between protocol messages and ledger objects. Field checks happen here, at the edge."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

from google.protobuf.timestamp_pb2 import Timestamp

from ...errors import UsageError
from ...protocol.v1 import bitshare_pb2 as pb
from ...units import MAX_PRIORITY
from ..backends.base import GpuSample, ProcessSample
from ..enforcement.enforcer import Measured
from ..state.manager import GpuView
from ..state.model import GpuFilter, Lease, LeaseSpec, LeaseState, Size

MAX_TEXT = 4096
_UNKNOWN_GPU = ("", "")

_STATE_TO_PB = {
    LeaseState.QUEUED: pb.LEASE_STATE_QUEUED,
    LeaseState.ACTIVE: pb.LEASE_STATE_ACTIVE,
    LeaseState.RELEASED: pb.LEASE_STATE_RELEASED,
    LeaseState.EXPIRED: pb.LEASE_STATE_EXPIRED,
    LeaseState.REVOKED: pb.LEASE_STATE_REVOKED,
    LeaseState.CANCELLED: pb.LEASE_STATE_CANCELLED,
    LeaseState.TIMED_OUT: pb.LEASE_STATE_TIMED_OUT,
}


def timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def size_from_pb(message: pb.LeaseSpec | pb.ResizeLeaseRequest) -> Size:
    which = message.WhichOneof("size")
    if which == "fraction":
        if not math.isfinite(message.fraction):
            raise UsageError("fraction must be a finite number in (0, 1]")
        return Size(fraction=message.fraction)
    if which == "memory_mib":
        return Size(memory_mib=message.memory_mib)
    raise UsageError("give a size: a fraction of a GPU or a memory size in MiB")


def spec_from_pb(message: pb.LeaseSpec) -> LeaseSpec:
    if abs(message.priority) > MAX_PRIORITY:
        raise UsageError(f"priority must be within +-{MAX_PRIORITY}")
    if len(message.filter.name) > MAX_TEXT:
        raise UsageError("GPU name filter is too long")
    return LeaseSpec(
        size=size_from_pb(message),
        gpu_count=message.gpu_count,
        compute_pct=message.compute_pct,
        filter=GpuFilter(message.filter.name, message.filter.min_memory_mib, tuple(message.filter.indices)),
        priority=message.priority,
        wait=message.wait,
        wait_timeout_s=message.wait_timeout_s,
        ttl_s=message.ttl_s,
    )


@functools.lru_cache(maxsize=4096)
def spec_to_pb(spec: LeaseSpec) -> pb.LeaseSpec:
    """Cached: specs are immutable and repeat; callers copy the message (never mutate it)."""
    return _spec_to_pb(spec)


def _spec_to_pb(spec: LeaseSpec) -> pb.LeaseSpec:
    message = pb.LeaseSpec(
        gpu_count=spec.gpu_count,
        compute_pct=spec.compute_pct,
        filter=pb.GpuFilter(
            name=spec.filter.name, min_memory_mib=spec.filter.min_memory_mib, indices=spec.filter.indices
        ),
        priority=spec.priority,
        wait=spec.wait,
        wait_timeout_s=spec.wait_timeout_s,
        ttl_s=spec.ttl_s,
    )
    if spec.size.fraction is not None:
        message.fraction = spec.size.fraction
    else:
        message.memory_mib = spec.size.memory_mib or 0
    return message


def lease_to_pb(
    lease: Lease, gpu_labels: Mapping[int, tuple[str, str]], simulated: bool, queue_position: int = 0
) -> pb.Lease:
    """``gpu_labels``: each GPU's (uuid, name)."""
    allocations = [
        pb.Allocation(
            gpu_index=index,
            gpu_uuid=gpu_labels.get(index, _UNKNOWN_GPU)[0],
            gpu_name=gpu_labels.get(index, _UNKNOWN_GPU)[1],
            memory_mib=mib,
            compute_pct=lease.spec.compute_pct,
        )
        for index, mib in sorted(lease.allocations.items())
    ]
    message = pb.Lease(
        id=lease.id,
        owner=lease.owner,
        state=_STATE_TO_PB[lease.state],
        spec=spec_to_pb(lease.spec),
        allocations=allocations,
        end_reason=lease.end_reason,
        queue_position=queue_position,
        client_host=lease.client_host,
        command=lease.command,
        request_id=lease.request_id,
        simulated=simulated,
        ttl_s=lease.ttl_s,
        priority=lease.priority,
        slurm_job=lease.slurm_job,
    )
    # Set in place: building Timestamp messages and copying them in costs twice as much.
    message.created_at.FromNanoseconds(int(lease.created_at * 1e9))
    if lease.granted_at is not None:
        message.granted_at.FromNanoseconds(int(lease.granted_at * 1e9))
    if lease.ended_at is not None:
        message.ended_at.FromNanoseconds(int(lease.ended_at * 1e9))
    elif lease.expires_at:
        message.expires_at.FromNanoseconds(int(lease.expires_at * 1e9))
    if lease.state is LeaseState.ACTIVE and lease.last_active_at:
        message.last_active_at.FromNanoseconds(int(lease.last_active_at * 1e9))
    return message


def process_to_pb(process: ProcessSample, labels: dict[int, tuple[str, str]]) -> pb.ProcessUsage:
    name, user = labels.get(process.pid, ("", ""))
    return pb.ProcessUsage(
        pid=process.pid,
        gpu_index=process.gpu_index,
        used_mib=process.used_mib,
        sm_pct=process.sm_pct,
        name=name,
        user=user,
    )


def usage_to_pb(
    measured: Measured,
    labels: dict[int, tuple[str, str]],
    over_since: float | None,
    ends_at: float | None,
) -> pb.LeaseUsage:
    usage = pb.LeaseUsage(
        used_mib=max(measured.used_mib.values(), default=0),
        sm_pct=max(measured.sm_pct.values(), default=0),
        processes=[process_to_pb(p, labels) for p in measured.processes],
        sampled_at=timestamp(measured.at),
    )
    if over_since is not None:
        usage.over_limit_since.CopyFrom(timestamp(over_since))
    if ends_at is not None:
        usage.ends_at.CopyFrom(timestamp(ends_at))
    return usage


def gpu_to_pb(
    view: GpuView,
    backend: str,
    simulated: bool,
    viewer: str | None,
    measured: GpuSample | None = None,
    unleased: list[pb.ProcessUsage] | None = None,
) -> pb.Gpu:
    """``viewer``: the caller's owner name, or None for an admin (who sees every owner)."""
    gpu = view.gpu
    partitions = []
    for lease in view.leases:
        visible = viewer is None or lease.owner == viewer
        partitions.append(
            pb.Partition(
                lease_id=lease.id if visible else "",
                owner=lease.owner if visible else "",
                memory_mib=lease.allocations[gpu.index],
                compute_pct=lease.spec.compute_pct,
            )
        )
    granted = view.granted_mib
    return pb.Gpu(
        index=gpu.index,
        uuid=gpu.uuid,
        name=gpu.name,
        backend=backend,
        simulated=simulated,
        total_mib=gpu.total_mib,
        reserved_mib=gpu.reserved_mib,
        capacity_mib=gpu.capacity_mib,
        granted_mib=granted,
        free_mib=gpu.capacity_mib - granted,
        granted_compute_pct=view.granted_compute_pct,
        drained=gpu.drained,
        partitions=partitions,
        mps=gpu.mps,
        used_mib=measured.used_mib if measured else 0,
        utilization_pct=measured.utilization_pct if measured else 0,
        temperature_c=measured.temperature_c if measured else 0,
        power_w=measured.power_w if measured else 0.0,
        unleased=unleased if viewer is None else None,
    )
