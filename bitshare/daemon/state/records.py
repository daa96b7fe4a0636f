"""Leases as JSON records for the state store (plain data; never pickled)."""

from __future__ import annotations

import functools
import json
from typing import Any

from ..ledger import GpuFilter, Lease, LeaseSpec, LeaseState, Size


@functools.lru_cache(maxsize=4096)
def _spec_json(spec: LeaseSpec) -> str:
    return json.dumps(spec_to_dict(spec), separators=(",", ":"))


def spec_to_dict(spec: LeaseSpec) -> dict[str, Any]:
    return {
        "fraction": spec.size.fraction,
        "memory_mib": spec.size.memory_mib,
        "gpu_count": spec.gpu_count,
        "compute_pct": spec.compute_pct,
        "filter": {
            "name": spec.filter.name,
            "min_memory_mib": spec.filter.min_memory_mib,
            "indices": list(spec.filter.indices),
        },
        "priority": spec.priority,
        "wait": spec.wait,
        "wait_timeout_s": spec.wait_timeout_s,
        "ttl_s": spec.ttl_s,
    }


def spec_from_dict(data: dict[str, Any]) -> LeaseSpec:
    flt = data.get("filter") or {}
    return LeaseSpec(
        size=Size(fraction=data.get("fraction"), memory_mib=data.get("memory_mib")),
        gpu_count=data["gpu_count"],
        compute_pct=data.get("compute_pct", 0),
        filter=GpuFilter(flt.get("name", ""), flt.get("min_memory_mib", 0), tuple(flt.get("indices", ()))),
        priority=data.get("priority", 0),
        wait=data.get("wait", True),
        wait_timeout_s=data.get("wait_timeout_s", 0.0),
        ttl_s=data.get("ttl_s", 0.0),
    )


def lease_to_json(lease: Lease) -> str:
    # The spec is immutable and repeats across leases: its JSON is made once and put first.
    rest = json.dumps(
        {
            "id": lease.id,
            "owner": lease.owner,
            "state": lease.state.value,
            "seq": lease.seq,
            "created_at": lease.created_at,
            "priority": lease.priority,
            "request_id": lease.request_id,
            "client_host": lease.client_host,
            "command": lease.command,
            "allocations": {str(k): v for k, v in lease.allocations.items()},
            "granted_at": lease.granted_at,
            "ended_at": lease.ended_at,
            "end_reason": lease.end_reason,
            "wait_deadline": lease.wait_deadline,
            "ttl_s": lease.ttl_s,
            "mps_uid": lease.mps_uid,
            "slurm_job": lease.slurm_job,
        },
        separators=(",", ":"),
    )
    return '{"spec":' + _spec_json(lease.spec) + "," + rest[1:]


def lease_from_json(text: str) -> Lease:
    data = json.loads(text)
    return Lease(
        id=data["id"],
        owner=data["owner"],
        spec=spec_from_dict(data["spec"]),
        state=LeaseState(data["state"]),
        seq=data["seq"],
        created_at=data["created_at"],
        priority=data["priority"],
        request_id=data.get("request_id", ""),
        client_host=data.get("client_host", ""),
        command=data.get("command", ""),
        allocations={int(k): v for k, v in data.get("allocations", {}).items()},
        granted_at=data.get("granted_at"),
        ended_at=data.get("ended_at"),
        end_reason=data.get("end_reason", ""),
        wait_deadline=data.get("wait_deadline"),
        ttl_s=data.get("ttl_s", 0.0),
        mps_uid=data.get("mps_uid"),
        slurm_job=data.get("slurm_job", ""),
    )
