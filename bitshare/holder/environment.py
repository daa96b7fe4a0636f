"""The environment a leased command runs in."""

from __future__ import annotations

from pathlib import Path

from ..protocol.v1 import bitshare_pb2 as pb

MIB = 1024 * 1024
# First on a remote command's PYTHONPATH: its `cupy` package is remote CuPy, its sitecustomize
# makes `import torch` give remote PyTorch.
REMOTE_SHIM = Path(__file__).resolve().parent.parent / "remote" / "shim"


def lease_environment(
    lease: pb.Lease, server: str, local_gpus: bool, simgpu_directory: str = "", remote: bool = False
) -> dict[str, str]:
    """Variables that tell the command (and CUDA libraries) what it was lent.

    ``local_gpus``: the leased GPUs are on this host, so CUDA may address them directly
    (unless ``remote``: then its CuPy works through the lease's worker instead).
    ``simgpu_directory``: where a simulated GPU's processes publish what they hold.
    """
    sizes = [a.memory_mib for a in lease.allocations]
    env = {
        "BITSHARE_LEASE_ID": lease.id,
        "BITSHARE_SERVER": server,
        "BITSHARE_GPU_MEMORY_MIB": ",".join(str(s) for s in sizes) if len(set(sizes)) > 1 else str(sizes[0]),
        "BITSHARE_GPU_INDICES": ",".join(str(a.gpu_index) for a in lease.allocations),
        "BITSHARE_GPU_UUIDS": ",".join(a.gpu_uuid for a in lease.allocations),
    }
    if lease.simulated:
        env["BITSHARE_SIMULATED"] = "1"
        if local_gpus and simgpu_directory:
            env["BITSHARE_SIMGPU_DIR"] = simgpu_directory
    elif local_gpus and not remote:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(a.gpu_uuid for a in lease.allocations)
        env["CUPY_GPU_MEMORY_LIMIT"] = str(min(sizes) * MIB)
        env.update(mps_environment(lease))
    return env


def mps_environment(lease: pb.Lease) -> dict[str, str]:
    """Make the command an MPS client of its GPU's control daemon, held to the partition.

    Limits are given by device ordinal as the command sees its GPUs (they are listed in
    lease order in CUDA_VISIBLE_DEVICES); limits given by UUID have been seen ignored.
    """
    pipes = {a.mps_pipe_directory for a in lease.allocations}
    if len(pipes) != 1 or "" in pipes:
        return {}
    env = {
        "CUDA_MPS_PIPE_DIRECTORY": pipes.pop(),
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": ",".join(f"{i}={a.memory_mib}M" for i, a in enumerate(lease.allocations)),
    }
    compute = lease.allocations[0].compute_pct
    if compute:
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(compute)
    return env


def remote_environment(
    env: dict[str, str], token: str, tls_ca: str, allow_insecure_tcp: bool = False
) -> dict[str, str]:
    """Make the command's ``import cupy`` give bitshare's remote CuPy, reaching the lease's worker
    with the launcher's own credentials (and its leave to use plaintext TCP off loopback)."""
    python_path = env.get("PYTHONPATH", "")
    return {
        "BITSHARE_REMOTE": "1",
        "PYTHONPATH": str(REMOTE_SHIM) + (":" + python_path if python_path else ""),
        **credentials_environment(token, tls_ca, allow_insecure_tcp),
    }


def credentials_environment(token: str, tls_ca: str, allow_insecure_tcp: bool) -> dict[str, str]:
    """The variables that give a child bitshare client these settings (those that are set)."""
    out = {}
    if token:
        out["BITSHARE_TOKEN"] = token
    if tls_ca:
        out["BITSHARE_TLS_CA"] = tls_ca
    if allow_insecure_tcp:
        out["BITSHARE_ALLOW_INSECURE_TCP"] = "1"
    return out


def has_local_gpu() -> bool:
    """NVML finds an NVIDIA GPU on this host."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no bindings, no driver: no GPU here
        return False
    try:
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:
        return False
    finally:
        pynvml.nvmlShutdown()
