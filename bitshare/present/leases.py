"""A lease's fields as text: its state, what it asked for, its partition, GPUs, use, command."""

from __future__ import annotations

from ..protocol.v1 import bitshare_pb2 as pb
from ..units import format_mib

COMMAND_WIDTH = 40  # a listing shows this much of a command: one long command cannot widen it


def state_name(state: int) -> str:
    """A lease state as people read it: active, queued, timed_out."""
    return pb.LeaseState.Name(state).removeprefix("LEASE_STATE_").lower()


def asked(spec: pb.LeaseSpec) -> str:
    """What a request asked for per GPU: p=0.25 (a fraction) or m=4096 (MiB)."""
    return f"p={spec.fraction:g}" if spec.WhichOneof("size") == "fraction" else f"m={spec.memory_mib}"


def partition(lease: pb.Lease) -> str:
    """The memory granted on each GPU ("512 MiB / 4 GiB"), else what was asked (p=0.25, or 8 GiB)."""
    sizes = sorted({a.memory_mib for a in lease.allocations})
    if sizes:
        return " / ".join(format_mib(s) for s in sizes)
    spec = lease.spec
    return asked(spec) if spec.WhichOneof("size") == "fraction" else format_mib(spec.memory_mib)


def gpus(lease: pb.Lease) -> str:
    """The GPU indices granted ("0,2"), else how many were asked for ("2×")."""
    return ",".join(str(a.gpu_index) for a in lease.allocations) or f"{lease.spec.gpu_count}×"


def measured(lease: pb.Lease) -> bool:
    """Whether the daemon has measured the lease's use yet (until then its figures are not zero: unknown)."""
    return lease.usage.HasField("sampled_at")


def used(lease: pb.Lease) -> str:
    """The memory the lease's processes use, once measured ("-" before)."""
    return format_mib(lease.usage.used_mib) if measured(lease) else "-"


def command_line(lease: pb.Lease) -> str:
    """The lease's command on one line, cut to COMMAND_WIDTH characters."""
    return " ".join(lease.command.split())[:COMMAND_WIDTH]
