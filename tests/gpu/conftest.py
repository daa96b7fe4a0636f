"""GPU tests need an NVIDIA GPU that NVML can see; without one they are skipped, saying why."""

from __future__ import annotations

import functools

import pytest


@functools.cache
def _no_gpu_reason() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # no bindings, no driver, no device: all mean "no GPU here"
        return f"no NVIDIA GPU here (NVML: {exc})"
    try:
        return "" if pynvml.nvmlDeviceGetCount() > 0 else "NVML finds no GPU here"
    finally:
        pynvml.nvmlShutdown()


@pytest.fixture(autouse=True)
def _needs_a_gpu() -> None:
    reason = _no_gpu_reason()
    if reason:
        pytest.skip(reason)
