"""Real NVIDIA GPUs through NVML (the nvidia-ml-py bindings, module ``pynvml``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from .base import BackendUnavailable, GpuInfo, GpuSample, ProcessSample, Sample

MIB = 1024 * 1024
DEFAULT_CONTEXT_MIB = 1024
T = TypeVar("T")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlBackend:
    name = "nvml"
    simulated = False

    def __init__(self, context_mib: int = DEFAULT_CONTEXT_MIB) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise BackendUnavailable(f"the NVML bindings are not installed ({exc})") from None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise BackendUnavailable(f"NVML did not start ({exc}); no NVIDIA driver on this host?") from None
        self._nvml = pynvml
        self.context_mib = context_mib
        self._last_seen_us: dict[int, int] = {}  # per GPU: newest process-utilisation sample read
        try:
            count = pynvml.nvmlDeviceGetCount()
            if count == 0:
                raise BackendUnavailable("NVML finds no GPU on this host")
            self.gpus = []
            self._handles = []
            for index in range(count):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                self._handles.append(handle)
                self.gpus.append(
                    GpuInfo(
                        index=index,
                        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                        name=_text(pynvml.nvmlDeviceGetName(handle)),
                        total_mib=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // MIB,
                    )
                )
            self.driver = _text(pynvml.nvmlSystemGetDriverVersion())
        except BaseException:
            pynvml.nvmlShutdown()
            raise

    def describe(self) -> str:
        names = ", ".join(f"{g.index}: {g.name} {g.total_mib} MiB" for g in self.gpus)
        return f"NVIDIA GPUs via NVML (driver {self.driver}): {names}"

    def sample(self) -> Sample:
        gpus: list[GpuSample] = []
        processes: list[ProcessSample] = []
        for info, handle in zip(self.gpus, self._handles, strict=True):
            gpus.append(self._sample_gpu(info.index, handle))
            processes.extend(self._sample_processes(info.index, handle))
        return Sample(time.time(), gpus, processes)

    def _sample_gpu(self, index: int, handle: Any) -> GpuSample:
        nvml = self._nvml
        memory = self._try(lambda: nvml.nvmlDeviceGetMemoryInfo(handle), None)
        rates = self._try(lambda: nvml.nvmlDeviceGetUtilizationRates(handle), None)
        return GpuSample(
            index=index,
            used_mib=int(memory.used) // MIB if memory is not None else 0,
            utilization_pct=int(rates.gpu) if rates is not None else 0,
            temperature_c=int(self._try(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU), 0)),
            power_w=self._try(lambda: nvml.nvmlDeviceGetPowerUsage(handle), 0) / 1000.0,
        )

    def _sample_processes(self, index: int, handle: Any) -> list[ProcessSample]:
        nvml = self._nvml
        used: dict[int, int] = {}
        # MPS clients are listed apart from ordinary compute processes.
        for lister in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetMPSComputeRunningProcesses):
            for proc in self._try(lambda lister=lister: lister(handle), []):
                memory = proc.usedGpuMemory
                # None (or NVML's "not available" value) when the driver cannot tell, as inside some VMs.
                mib = int(memory) // MIB if isinstance(memory, int) and memory < 2**63 else 0
                used[int(proc.pid)] = max(used.get(int(proc.pid), 0), mib)
        sm = self._process_utilization(index, handle)
        return [ProcessSample(pid, index, mib, sm.get(pid, 0)) for pid, mib in used.items()]

    def _process_utilization(self, index: int, handle: Any) -> dict[int, int]:
        """SM % per process since the last call (NVML keeps a short history of samples)."""
        since = self._last_seen_us.get(index, 0)
        samples = self._try(lambda: self._nvml.nvmlDeviceGetProcessUtilization(handle, since), [])
        newest: dict[int, tuple[int, int]] = {}
        for item in samples:
            stamp = int(item.timeStamp)
            if stamp > newest.get(int(item.pid), (-1, 0))[0]:
                newest[int(item.pid)] = (stamp, int(item.smUtil))
            self._last_seen_us[index] = max(self._last_seen_us.get(index, 0), stamp)
        return {pid: min(100, sm) for pid, (_, sm) in newest.items()}

    def _try(self, read: Callable[[], T], default: T) -> T:
        """NVML figures a GPU does not support (or has no samples for yet) read as the default."""
        try:
            return read()
        except self._nvml.NVMLError:
            return default

    def close(self) -> None:
        self._nvml.nvmlShutdown()
