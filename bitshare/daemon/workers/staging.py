"""Bulk bytes between the data socket and a GPU in pieces, through two pinned host buffers: the
next piece arrives (or leaves) while the device copies this one, so a large transfer takes about
the longer of the network and the copy rather than their sum.

The piecing is pure logic over a :class:`Stager` (two host buffers, asynchronous copies to and
from the device's bytes, a wait per buffer); CuPy and PyTorch each give one. Simulated GPUs have
no device copy to overlap: their arrays are read and written in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

PIECE = 8 * 1024 * 1024
OVERLAP_FROM = 2 * PIECE  # smaller transfers go whole: there is nothing to overlap


class Stager(Protocol):
    """Two pinned host buffers of PIECE bytes and a device target to copy them to and from."""

    def buffer(self, slot: int) -> memoryview: ...
    def to_device(self, slot: int, offset: int, size: int) -> None: ...
    def from_device(self, slot: int, offset: int, size: int) -> None: ...
    def wait(self, slot: int) -> None: ...
    def finish(self) -> None: ...


def _pieces(nbytes: int) -> list[tuple[int, int]]:
    return [(offset, min(PIECE, nbytes - offset)) for offset in range(0, nbytes, PIECE)]


def receive(read_into: Callable[[memoryview], None], nbytes: int, stager: Stager) -> None:
    """Fill the stager's device target with ``nbytes`` read piece by piece; a buffer is filled
    again only once its last copy to the device is done. Every copy has finished on return,
    also when a read fails."""
    copying = [False, False]
    try:
        for index, (offset, size) in enumerate(_pieces(nbytes)):
            slot = index % 2
            if copying[slot]:
                stager.wait(slot)
            read_into(stager.buffer(slot)[:size])
            stager.to_device(slot, offset, size)
            copying[slot] = True
    finally:
        stager.finish()


def send(nbytes: int, stager: Stager) -> Iterator[memoryview]:
    """The device target's first ``nbytes``, piece by piece as each arrives on the host; the
    next piece's copy runs while the caller sends this one."""
    pieces = _pieces(nbytes)
    try:
        if pieces:
            stager.from_device(0, *pieces[0])
        for index, (_, size) in enumerate(pieces):
            slot = index % 2
            if index + 1 < len(pieces):
                stager.from_device(1 - slot, *pieces[index + 1])  # (that buffer was sent: free)
            stager.wait(slot)
            yield stager.buffer(slot)[:size]
    finally:
        stager.finish()


class CupyStager:
    """CuPy's side: copies on a stream of their own, which (being a blocking stream) starts after
    the work already queued on the null stream, where the session's operations run."""

    def __init__(self, cupy: Any) -> None:
        self.cupy = cupy
        self.stream = cupy.cuda.Stream()
        self._pinned = [cupy.cuda.alloc_pinned_memory(PIECE) for _ in range(2)]
        self._host = [np.frombuffer(memory, np.uint8, PIECE) for memory in self._pinned]
        self._done: list[Any] = [None, None]
        self.target: Any = None  # a 1-D uint8 view of the device array

    def buffer(self, slot: int) -> memoryview:
        return memoryview(self._host[slot])

    def to_device(self, slot: int, offset: int, size: int) -> None:
        self.target[offset : offset + size].set(self._host[slot][:size], stream=self.stream)
        self._done[slot] = self.stream.record()

    def from_device(self, slot: int, offset: int, size: int) -> None:
        self.target[offset : offset + size].get(stream=self.stream, out=self._host[slot][:size], blocking=False)
        self._done[slot] = self.stream.record()

    def wait(self, slot: int) -> None:
        if self._done[slot] is not None:
            self._done[slot].synchronize()

    def finish(self) -> None:
        self.stream.synchronize()
        self._done = [None, None]


class TorchStager:
    """PyTorch's side: copies on a side stream that first waits for the current stream (where
    the tensor was made and computed), then finishes before the tensor is used or answered."""

    def __init__(self, torch: Any, device: Any) -> None:
        self.torch = torch
        self.stream = torch.cuda.Stream(device)
        self._pinned = [torch.empty(PIECE, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
        self._host = [pinned.numpy() for pinned in self._pinned]
        self._done: list[Any] = [None, None]
        self.target: Any = None  # a 1-D uint8 CUDA tensor

    def aim(self, target: Any) -> None:
        self.target = target
        self.stream.wait_stream(self.torch.cuda.current_stream(target.device))

    def buffer(self, slot: int) -> memoryview:
        return memoryview(self._host[slot])

    def _copy(self, slot: int, into: Any, source: Any) -> None:
        with self.torch.cuda.stream(self.stream):
            into.copy_(source, non_blocking=True)
            event = self.torch.cuda.Event()
            event.record(self.stream)
        self._done[slot] = event

    def to_device(self, slot: int, offset: int, size: int) -> None:
        self._copy(slot, self.target[offset : offset + size], self._pinned[slot][:size])

    def from_device(self, slot: int, offset: int, size: int) -> None:
        self._copy(slot, self._pinned[slot][:size], self.target[offset : offset + size])

    def wait(self, slot: int) -> None:
        if self._done[slot] is not None:
            self._done[slot].synchronize()

    def finish(self) -> None:
        self.stream.synchronize()
        self._done = [None, None]
