"""The seed experiment's baselines: the same workloads at once on the same GPU without bitshare.

- ``time-slicing``: plain CUDA processes, no lease and no MPS; the GPU switches between their
  contexts (NVIDIA's name for the default way a GPU is shared).
- ``mps``: the workloads as clients of an MPS control daemon of the experiment's own (started as
  bitshared starts its own, one per GPU), each held by ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` to the
  memory a lease of the same share gets: MPS as an administrator would set it up by hand.

Both run the workloads on this host, on the GPU the leases were on, so they need that GPU here:
an NVIDIA GPU of the daemon this command reaches on a local address.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..daemon.enforcement.mps import CONTROL, MpsControl, MpsUnavailable, control_binary
from ..errors import BitshareError

TIME_SLICING, MPS = "time-slicing", "mps"
BASELINES = (TIME_SLICING, MPS)
TITLES = {TIME_SLICING: "bare time-slicing", MPS: "bare MPS"}
MPS_PREFIX = "CUDA_MPS_"


class BaselineError(BitshareError, RuntimeError):
    """A baseline could not be set up; the message says why."""


def refusal(baselines: tuple[str, ...], simulated: bool, local: bool, mps_control: str | None) -> str | None:
    """Why these baselines cannot run against this GPU (one line), or None when they can.

    ``local``: the daemon is reached on this host; ``mps_control``: the MPS control binary found here.
    """
    if not baselines:
        return None
    if simulated:
        # Without a lease the workloads reach no GPU at all: a simulated GPU is the daemon's
        # NumPy worker. Run bare, they would measure this host's CPU scheduler, not a GPU's.
        return "--baseline needs NVIDIA GPUs: a simulated GPU is reached only through leases"
    if not local:
        return "--baseline runs the workloads on this host without bitshare: reach the GPU's daemon on a local address"
    if MPS in baselines and mps_control is None:
        return f"--baseline mps needs {CONTROL} on PATH (it comes with the NVIDIA driver utilities)"
    return None


def find_mps_control() -> str | None:
    try:
        return control_binary()
    except MpsUnavailable:
        return None


def environment(
    base: Mapping[str, str], gpu_uuid: str, pipe_directory: Path, memory_limit_mib: int | None = None
) -> dict[str, str]:
    """The workloads' environment in a baseline: only the leased GPU visible, the caller's own MPS
    settings dropped, and MPS reached through ``pipe_directory`` (an empty one: no MPS at all),
    each client held to ``memory_limit_mib`` when given."""
    env = {key: value for key, value in base.items() if not key.startswith(MPS_PREFIX)}
    env["CUDA_VISIBLE_DEVICES"] = gpu_uuid
    # A pipe directory with no control daemon on it: CUDA finds no MPS there and runs without it,
    # even where a system-wide MPS listens on the default /tmp/nvidia-mps.
    env["CUDA_MPS_PIPE_DIRECTORY"] = str(pipe_directory)
    if memory_limit_mib is not None:
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={memory_limit_mib}M"  # device 0: the one visible
    return env


@contextlib.contextmanager
def prepared(
    name: str, base: Mapping[str, str], gpu_index: int, gpu_uuid: str, memory_limit_mib: int
) -> Iterator[dict[str, str]]:
    """The environment the workloads of baseline ``name`` run in, for as long as the block lasts
    (for ``mps``, the life of its control daemon, stopped at the end)."""
    # Short and private: MPS's sockets live under it, and a socket's path has a length limit.
    directory = Path(tempfile.mkdtemp(prefix="bitshare-bench-"))
    try:
        if name == TIME_SLICING:
            empty = directory / "no-mps"
            empty.mkdir()
            yield environment(base, gpu_uuid, empty)
            return
        control = MpsControl(gpu_index, gpu_uuid, directory, find_mps_control() or CONTROL)
        try:
            control.start()
        except MpsUnavailable as exc:
            raise BaselineError(str(exc)) from None
        try:
            yield environment(base, gpu_uuid, control.pipe_dir, memory_limit_mib)
        finally:
            control.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
