"""Real NVIDIA GPUs through NVML (the nvidia-ml-py bindings, module ``pynvml``)."""

from __future__ import annotations

from .base import BackendUnavailable, GpuInfo

MIB = 1024 * 1024


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlBackend:
    name = "nvml"
    simulated = False

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise BackendUnavailable(f"the NVML bindings are not installed ({exc})") from None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise BackendUnavailable(f"NVML did not start ({exc}); no NVIDIA driver on this host?") from None
        self._nvml = pynvml
        try:
            count = pynvml.nvmlDeviceGetCount()
            if count == 0:
                raise BackendUnavailable("NVML finds no GPU on this host")
            self.gpus = []
            for index in range(count):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
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

    def close(self) -> None:
        self._nvml.nvmlShutdown()
