"""A recorded picture of two daemons for the console's snapshot tests (and its screenshots)."""

from __future__ import annotations

from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.tui.data import FixedSource

NOW = 1_795_000_000.0  # the console's clock in the pictures
GIB = 1024


def _stamp(seconds_ago: float) -> dict:
    return {"seconds": int(NOW - seconds_ago)}


def _lease(
    lid: str,
    owner: str,
    gpu: int,
    mib: int,
    used: int,
    sm: int,
    command: str,
    host: str,
    tier: str,
    age: float,
    idle: float,
) -> pb.Lease:
    lease = pb.Lease(
        id=lid,
        owner=owner,
        state=pb.LEASE_STATE_ACTIVE,
        client_host=host,
        command=command,
        enforcement=tier,
        allocations=[pb.Allocation(gpu_index=gpu, memory_mib=mib)],
        spec=pb.LeaseSpec(gpu_count=1, memory_mib=mib),
    )
    lease.created_at.FromSeconds(int(NOW - age))
    lease.granted_at.FromSeconds(int(NOW - age))
    lease.last_active_at.FromSeconds(int(NOW - idle))
    lease.usage.used_mib, lease.usage.sm_pct = used, sm
    lease.usage.sampled_at.FromSeconds(int(NOW))
    lease.usage.processes.add(pid=4100 + gpu, gpu_index=gpu, used_mib=used, sm_pct=sm, name="python", user=owner[5:])
    return lease


def _queued(lid: str, owner: str, position: int, fraction: float, priority: int, waited: float) -> pb.Lease:
    lease = pb.Lease(
        id=lid,
        owner=owner,
        state=pb.LEASE_STATE_QUEUED,
        queue_position=position,
        priority=priority,
        spec=pb.LeaseSpec(gpu_count=1, fraction=fraction, priority=priority),
    )
    lease.created_at.FromSeconds(int(NOW - waited))
    return lease


def _gpu(index: int, name: str, partitions: list[pb.Lease], util: int, used: int, simulated: bool) -> pb.Gpu:
    total = 81559 if not simulated else 16384
    gpu = pb.Gpu(
        index=index,
        uuid=f"GPU-{index}",
        name=name,
        backend="simulated" if simulated else "nvml",
        simulated=simulated,
        total_mib=total,
        reserved_mib=512,
        capacity_mib=total - 512,
        utilization_pct=util,
        used_mib=used,
        temperature_c=0 if simulated else 54 + index,
        power_w=0.0 if simulated else 310.0 + 10 * index,
        mps=not simulated,
    )
    for lease in partitions:
        gpu.partitions.add(lease_id=lease.id, owner=lease.owner, memory_mib=lease.allocations[0].memory_mib)
    gpu.granted_mib = sum(p.memory_mib for p in gpu.partitions)
    gpu.free_mib = gpu.capacity_mib - gpu.granted_mib
    return gpu


def sources() -> list[FixedSource]:
    a = _lease(
        "7f3a9c21d0e4", "user:alice", 0, 20 * GIB, 17 * GIB, 61, "python serve.py --port 8080", "gpu1", "mps", 5400, 2
    )
    b = _lease("b81e4402ac57", "token:ci-runner", 0, 20 * GIB, 9 * GIB, 23, "pytest -k gpu", "ci-7", "agent", 620, 40)
    c = _lease(
        "c0ffee123456", "user:bob", 1, 40 * GIB, 38 * GIB, 88, "python train.py --epochs 90", "gpu1", "mps", 86000, 0
    )
    d = _lease(
        "5eed5eed5eed", "user:carol", 0, 4 * GIB, 3 * GIB, 5, "python notebook_kernel.py", "lab-3", "watchdog", 300, 290
    )
    q1 = _queued("9a9a9a9a9a9a", "user:dave", 1, 0.75, 0, 130)
    q2 = _queued("1b2c3d4e5f60", "token:batch", 2, 0.5, 5, 45)
    snapshots = []
    for step, util in enumerate((35, 48, 52, 70, 66, 81, 77, 74, 90, 84)):
        gpus = [
            _gpu(0, "NVIDIA H100 80GB HBM3", [a, b, d], util, 30 * GIB, False),
            _gpu(1, "NVIDIA H100 80GB HBM3", [c], min(100, util + 8), 39 * GIB, False),
        ]
        snapshots.append(
            pb.TelemetrySnapshot(
                server=pb.ServerInfo(hostname="gpu1", backend="nvml", caller="user:root", caller_role=pb.ROLE_ADMIN),
                gpus=gpus,
                leases=[a, b, c, d, q1, q2],
                version=step,
            )
        )
    sim = pb.TelemetrySnapshot(
        server=pb.ServerInfo(hostname="laptop", backend="simulated", simulated=True, caller_role=pb.ROLE_ADMIN),
        gpus=[_gpu(0, "Simulated GPU 16 GiB (CPU-backed)", [], 0, 0, True)],
        version=1,
    )
    events = {
        "7f3a9c21d0e4": [
            pb.Event(kind="granted", lease_id="7f3a9c21d0e4", detail="GPU 0: 20480 MiB", at=_stamp(5400)),
            pb.Event(kind="queued", lease_id="7f3a9c21d0e4", detail="", at=_stamp(5460)),
        ]
    }
    return [
        FixedSource("gpu1:7443", snapshots, lease_events=events),
        FixedSource("unix:/run/bitshare/bitshared.sock", [sim]),
    ]


def as_client(snapshot: pb.TelemetrySnapshot, caller: str) -> pb.TelemetrySnapshot:
    """``snapshot`` as the daemon shows it to the client ``caller``: its own leases, the GPUs with
    others' partitions unnamed, no processes outside leases."""
    seen = pb.TelemetrySnapshot()
    seen.CopyFrom(snapshot)
    seen.server.caller, seen.server.caller_role = caller, pb.ROLE_CLIENT
    del seen.leases[:]
    seen.leases.extend(lease for lease in snapshot.leases if lease.owner == caller)
    for gpu in seen.gpus:
        del gpu.unleased[:]
        for part in gpu.partitions:
            if part.owner != caller:
                part.lease_id, part.owner = "", ""
    return seen


def client_sources() -> list[FixedSource]:
    """The first daemon of :func:`sources`, watched with the client token of ``token:ci-runner``."""
    first = sources()[0]
    return [FixedSource(first.name, [as_client(s, "token:ci-runner") for s in first.recorded])]
