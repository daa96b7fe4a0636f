"""Plain-text tables and JSON for the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict

from ..units import format_mib
from ..v1 import bitshare_pb2 as pb


def to_json(messages: Sequence[Any] | Any) -> str:
    def one(message: Any) -> Any:
        return MessageToDict(message, preserving_proto_field_name=True) if hasattr(message, "DESCRIPTOR") else message

    data = [one(m) for m in messages] if isinstance(messages, (list, tuple)) else one(messages)
    return json.dumps(data, indent=2, sort_keys=False)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in cells]
    return "\n".join(lines)


def state_name(state: int) -> str:
    return pb.LeaseState.Name(state).removeprefix("LEASE_STATE_").lower()


def size_text(spec: pb.LeaseSpec) -> str:
    return f"p={spec.fraction:g}" if spec.WhichOneof("size") == "fraction" else f"m={spec.memory_mib}"


def age(stamp: Any, now: float | None = None) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    seconds = max(0.0, (now or time.time()) - stamp.ToNanoseconds() / 1e9)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def leases_table(leases: Sequence[pb.Lease]) -> str:
    rows = []
    for lease in leases:
        gpus = ",".join(str(a.gpu_index) for a in lease.allocations) or "-"
        mem = ",".join(str(a.memory_mib) for a in lease.allocations) or "-"
        pos = str(lease.queue_position) if lease.queue_position else "-"
        rows.append(
            [
                lease.id,
                lease.owner,
                state_name(lease.state),
                pos,
                gpus,
                size_text(lease.spec),
                mem,
                lease.spec.priority,
                age(lease.created_at),
                lease.command[:40],
            ]
        )
    return table(["LEASE", "OWNER", "STATE", "QPOS", "GPUS", "ASKED", "MIB", "PRIO", "AGE", "COMMAND"], rows)


def gpus_table(gpus: Sequence[pb.Gpu]) -> str:
    rows = [
        [
            g.index,
            g.name,
            g.uuid,
            g.total_mib,
            g.capacity_mib,
            g.granted_mib,
            g.free_mib,
            len(g.partitions),
            "drained" if g.drained else "ok",
        ]
        for g in gpus
    ]
    return table(["GPU", "NAME", "UUID", "TOTAL", "LENDABLE", "GRANTED", "FREE", "LEASES", "STATE"], rows)


def smi(info: pb.ServerInfo, gpus: Sequence[pb.Gpu], width: int = 40) -> str:
    """An nvidia-smi-like picture of each GPU and the partitions granted on it."""
    kind = "SIMULATED (CPU-backed)" if info.simulated else info.backend
    out = [f"bitshared {info.version} on {info.hostname}  backend: {kind}  GPUs: {len(gpus)}"]
    for gpu in gpus:
        used = round(width * gpu.granted_mib / gpu.total_mib) if gpu.total_mib else 0
        reserved = round(width * gpu.reserved_mib / gpu.total_mib) if gpu.total_mib else 0
        bar = "#" * used + "." * max(0, width - used - reserved) + "r" * reserved
        flags = " DRAINED" if gpu.drained else ""
        out.append("")
        out.append(f"GPU {gpu.index}  {gpu.name}{flags}")
        out.append(
            f"  [{bar}] {format_mib(gpu.granted_mib)} / {format_mib(gpu.capacity_mib)} lent"
            f" ({format_mib(gpu.reserved_mib)} reserved)"
        )
        for part in gpu.partitions:
            who = f"{part.lease_id}  {part.owner}" if part.lease_id else "(another user's lease)"
            compute = f"  compute {part.compute_pct}%" if part.compute_pct else ""
            out.append(f"    {format_mib(part.memory_mib):>9}  {who}{compute}")
        if not gpu.partitions:
            out.append("    no leases")
    return "\n".join(out)
