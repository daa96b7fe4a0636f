"""Simulated GPUs: declared in config, backed by the CPU, and always labelled as simulated.

Memory is what leases are granted (and, for remote work, the bytes a worker holds);
nothing here invents utilisation figures.
"""

from __future__ import annotations

from ...units import format_mib
from .base import GpuInfo


class SimulatedBackend:
    name = "simulated"
    simulated = True

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

    def describe(self) -> str:
        sizes = ", ".join(format_mib(g.total_mib) for g in self.gpus)
        why = f" because {self.fallback_reason}" if self.fallback_reason else ""
        return f"SIMULATED GPUs (CPU-backed, not real hardware){why}: {len(self.gpus)} x [{sizes}]"

    def close(self) -> None:
        pass
