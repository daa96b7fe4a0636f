"""The environment a leased command runs in."""

from __future__ import annotations

from ..v1 import bitshare_pb2 as pb

MIB = 1024 * 1024


def lease_environment(lease: pb.Lease, server: str, local_gpus: bool) -> dict[str, str]:
    """Variables that tell the command (and CUDA libraries) what it was lent.

    ``local_gpus``: the leased GPUs are on this host, so CUDA may address them directly.
    """
    sizes = [a.memory_mib for a in lease.allocations]
    env = {
        "BITSHARE_LEASE_ID": lease.id,
        "BITSHARE_SERVER": server,
        "BITSHARE_GPU_MEMORY_MIB": ",".join(str(s) for s in sizes) if len(set(sizes)) > 1 else str(sizes[0]),
        "BITSHARE_GPU_INDICES": ",".join(str(a.gpu_index) for a in lease.allocations),
    }
    if lease.simulated:
        env["BITSHARE_SIMULATED"] = "1"
    elif local_gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(a.gpu_uuid for a in lease.allocations)
        env["CUPY_GPU_MEMORY_LIMIT"] = str(min(sizes) * MIB)
    return env
