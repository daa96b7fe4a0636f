"""What every GPU backend provides: the inventory, and measurements of what runs on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ...errors import DaemonError


class BackendUnavailable(DaemonError):
    """The backend cannot run on this host (no driver, no GPUs)."""


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str
    name: str
    total_mib: int


@dataclass(frozen=True)
class ProcessSample:
    """One process's use of one GPU."""

    pid: int
    gpu_index: int
    used_mib: int
    sm_pct: int = 0  # share of the last interval its kernels ran


@dataclass(frozen=True)
class GpuSample:
    """A GPU as a whole; 0 where the backend cannot measure a figure."""

    index: int
    used_mib: int = 0
    utilization_pct: int = 0
    temperature_c: int = 0
    power_w: float = 0.0


@dataclass(frozen=True)
class Sample:
    at: float
    gpus: list[GpuSample] = field(default_factory=list)
    processes: list[ProcessSample] = field(default_factory=list)


class Backend(Protocol):
    name: str
    simulated: bool
    gpus: list[GpuInfo]
    # Memory a process may use past its partition for what the partition cannot hold
    # (a CUDA context lives outside the allocator's pool); the watchdog allows it.
    context_mib: int

    def describe(self) -> str:
        """One line for the log: what the GPUs are and where they come from."""
        ...

    def sample(self) -> Sample:
        """Measure every GPU and the processes on it now (blocking; call it off the event loop)."""
        ...

    def close(self) -> None: ...
