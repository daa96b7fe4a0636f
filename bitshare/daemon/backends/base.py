"""What every GPU backend provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this host (no driver, no GPUs)."""


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str
    name: str
    total_mib: int


class Backend(Protocol):
    name: str
    simulated: bool
    gpus: list[GpuInfo]

    def describe(self) -> str:
        """One line for the log: what the GPUs are and where they come from."""
        ...

    def close(self) -> None: ...
