"""GPU backends: where the daemon's GPU inventory comes from."""

from __future__ import annotations

from ...config import ConfigError, DaemonConfig
from ...units import parse_simulate
from .base import Backend, BackendUnavailable, GpuInfo
from .nvml import NvmlBackend
from .simulated import SimulatedBackend

DEFAULT_SIMULATED = "1x16GiB"

__all__ = ["Backend", "BackendUnavailable", "GpuInfo", "select_backend"]


def select_backend(config: DaemonConfig) -> Backend:
    """The configured backend; ``auto`` takes NVML when it finds GPUs, else simulated ones."""
    if config.simulate or config.backend == "simulated":
        try:
            return SimulatedBackend(parse_simulate(config.simulate or DEFAULT_SIMULATED))
        except ValueError as exc:
            raise ConfigError(f"simulate: {exc}") from None
    try:
        return NvmlBackend(config.context_mib)
    except BackendUnavailable as exc:
        if config.backend == "nvml":
            raise ConfigError(f"backend nvml: {exc}") from None
        return SimulatedBackend(parse_simulate(DEFAULT_SIMULATED), fallback_reason=str(exc))
