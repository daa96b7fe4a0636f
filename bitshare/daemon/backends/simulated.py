"""Simulated GPUs: declared in config, backed by the CPU, and always labelled as simulated.

Memory is what leases are granted and, measured, the bytes that processes hold in
simulated device memory (:mod:`bitshare.simgpu`, published under the registry
directory); utilisation is their busy time. No figure here is invented: a GPU
nobody uses reads 0, and temperature and power are not measured (0).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ...simgpu import read_registry
from ...units import format_mib
from .base import GpuInfo, GpuSample, ProcessSample, Sample

MIB = 1024 * 1024


class SimulatedBackend:
    name = "simulated"
    simulated = True
    context_mib = 0  # no CUDA context: everything a process holds is in its pool

    def __init__(self, sizes_mib: list[int], fallback_reason: str = "") -> None:
        self.fallback_reason = fallback_reason
        self.gpus = [
            GpuInfo(
                index=i,
                uuid=f"SIM-{i:02d}-{size}",
                name=f"Simulated GPU {format_mib(size)} (CPU-backed)",
                total_mib=size,
            )
            for i, size in enumerate(sizes_mib)
        ]
        self.registry: Path | None = None
        self._busy: dict[tuple[int, str], tuple[float, float]] = {}  # (pid, uuid) -> (busy s, at)

    def describe(self) -> str:
        sizes = ", ".join(format_mib(g.total_mib) for g in self.gpus)
        why = f" because {self.fallback_reason}" if self.fallback_reason else ""
        return f"SIMULATED GPUs (CPU-backed, not real hardware){why}: {len(self.gpus)} x [{sizes}]"

    def open_registry(self, directory: Path) -> None:
        """Create the directory where processes publish their holdings: anyone may add a file, only
        its owner (and the daemon) remove it, and nobody else can list it (mode 1733)."""
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o1733)
        self.registry = directory

    def sample(self) -> Sample:
        now = time.time()
        by_uuid = {g.uuid: g.index for g in self.gpus}
        processes: list[ProcessSample] = []
        busy: dict[tuple[int, str], tuple[float, float]] = {}
        holdings = read_registry(self.registry) if self.registry is not None else []
        for holding in holdings:
            index = by_uuid.get(holding.gpu_uuid)
            if index is None:
                continue
            key = (holding.pid, holding.gpu_uuid)
            busy[key] = (holding.busy_s, now)
            before = self._busy.get(key)
            sm = 0
            if before is not None and now > before[1]:
                sm = round(100 * (holding.busy_s - before[0]) / (now - before[1]))
            processes.append(ProcessSample(holding.pid, index, -(-holding.used_bytes // MIB), max(0, min(100, sm))))
        self._busy = busy
        gpus = [
            GpuSample(
                index=g.index,
                used_mib=sum(p.used_mib for p in processes if p.gpu_index == g.index),
                utilization_pct=min(100, sum(p.sm_pct for p in processes if p.gpu_index == g.index)),
            )
            for g in self.gpus
        ]
        return Sample(now, gpus, processes)

    def close(self) -> None:
        pass
