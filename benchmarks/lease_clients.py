"""The lease benchmark's clients: worker processes, each running many gRPC clients on one asyncio
loop, told what to run by the benchmark and sending back what they saw (lease_bench.py)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any, Protocol

import grpc

from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.protocol.v1 import bitshare_pb2_grpc as pb_grpc

try:
    import psutil
except ImportError:  # optional: without it the clients' CPU is not reported
    psutil = None

MEMORY_MIB = 1
CALL_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 30.0
ERROR_BACKOFF_S = 0.01
# Without a local subchannel pool gRPC lets channels with equal targets share one connection.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Usage:
    """The daemon's CPU seconds (user + system, all threads) and write syscalls/bytes, and the client
    workers' CPU seconds; None where unknown."""

    cpu_s: float | None = None
    write_calls: int | None = None
    write_bytes: int | None = None
    client_cpu_s: float | None = None

    def __sub__(self, other: Usage) -> Usage:
        def diff(a: Any, b: Any) -> Any:
            return None if a is None or b is None else a - b

        return Usage(
            diff(self.cpu_s, other.cpu_s),
            diff(self.write_calls, other.write_calls),
            diff(self.write_bytes, other.write_bytes),
            diff(self.client_cpu_s, other.client_cpu_s),
        )


class Measured(Protocol):
    """What a phase measures besides its clients: the daemon's resource use so far."""

    def usage(self) -> Usage: ...


# ----- what workers are told and what they send back ------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One timed phase: ``mode`` is "noop" or "lease"; samples count from ``warmup_s`` on."""

    mode: str
    clients: int
    warmup_s: float
    seconds: float


@dataclass
class Samples:
    """What the clients of one phase saw; latencies in seconds, from the measured window only."""

    first: list[float] = field(default_factory=list)  # no-op, or grant (RequestLease)
    second: list[float] = field(default_factory=list)  # release (lease phase only)
    completed: int = 0  # no-ops, or grant+release pairs, in the window
    granted: list[str] = field(default_factory=list)  # every acknowledged grant, warm-up included
    unreleased: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str, code: object) -> None:
        key = f"{what}: {code}"
        self.errors[key] = self.errors.get(key, 0) + 1

    def merge(self, other: Samples) -> None:
        self.first += other.first
        self.second += other.second
        self.completed += other.completed
        self.granted += other.granted
        self.unreleased += other.unreleased
        for key, count in other.errors.items():
            self.errors[key] = self.errors.get(key, 0) + count


# ----- worker processes ----------------------------------------------------------------------


def _worker_main(conn: Connection, target: str, token: str) -> None:
    """Run phases as the parent asks, until it sends None."""
    metadata = (("authorization", f"Bearer {token}"),)
    while True:
        phase = conn.recv()
        if phase is None:
            return
        try:
            samples = asyncio.run(_run_phase(conn, target, metadata, phase))
        except Exception:
            conn.send(("error", traceback.format_exc()))
            return
        conn.send(("done", samples))


async def _run_phase(conn: Connection, target: str, metadata: Metadata, phase: Phase) -> Samples:
    """Connect one channel per client, tell the parent, wait for its start time, then load the daemon."""
    channels = [grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) for _ in range(phase.clients)]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), READY_TIMEOUT_S)
        conn.send(("ready", None))
        _, start = conn.recv()  # a time.monotonic() value; the clock is shared by all processes
        measure_from = start + phase.warmup_s
        end = measure_from + phase.seconds
        loop = _lease_client if phase.mode == "lease" else _noop_client
        parts = [Samples() for _ in channels]
        stubs = [pb_grpc.LeaseServiceStub(c) for c in channels]
        await asyncio.gather(*(loop(s, metadata, measure_from, end, p) for s, p in zip(stubs, parts, strict=False)))
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    total = Samples()
    for part in parts:
        total.merge(part)
    return total


async def _noop_client(
    stub: pb_grpc.LeaseServiceStub, metadata: Metadata, measure_from: float, end: float, out: Samples
) -> None:
    """GetServerInfo in a loop: an authenticated round trip that does no lease work and writes nothing."""
    request = pb.GetServerInfoRequest()
    while (begin := time.monotonic()) < end:
        t0 = time.perf_counter()
        try:
            await stub.GetServerInfo(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            out.error("no-op", exc.code().name)
            await asyncio.sleep(ERROR_BACKOFF_S)
            continue
        if begin >= measure_from:
            out.first.append(time.perf_counter() - t0)
            out.completed += 1


async def _lease_client(
    stub: pb_grpc.LeaseServiceStub, metadata: Metadata, measure_from: float, end: float, out: Samples
) -> None:
    """RequestLease (wait=false, a fresh request id each time) then ReleaseLease, in a loop."""
    spec = pb.LeaseSpec(gpu_count=1, memory_mib=MEMORY_MIB, wait=False)
    while (begin := time.monotonic()) < end:
        request = pb.RequestLeaseRequest(request_id=uuid.uuid4().hex, spec=spec)
        t0 = time.perf_counter()
        try:
            lease = await stub.RequestLease(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            out.error("grant", exc.code().name)
            await asyncio.sleep(ERROR_BACKOFF_S)
            continue
        t1 = time.perf_counter()
        if lease.state != pb.LEASE_STATE_ACTIVE:
            out.error("grant", f"came back {pb.LeaseState.Name(lease.state)}")
        else:
            out.granted.append(lease.id)
        try:
            released = await stub.ReleaseLease(
                pb.ReleaseLeaseRequest(lease_id=lease.id), metadata=metadata, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            out.error("release", exc.code().name)
            out.unreleased.append(lease.id)
            await asyncio.sleep(ERROR_BACKOFF_S)
            continue
        t2 = time.perf_counter()
        if released.state != pb.LEASE_STATE_RELEASED:
            out.error("release", f"came back {pb.LeaseState.Name(released.state)}")
        if begin >= measure_from:
            out.first.append(t1 - t0)
            out.second.append(t2 - t1)
            out.completed += 1


class WorkerPool:
    """Worker processes (spawned: a forked gRPC is unsafe), each running one asyncio loop per phase."""

    def __init__(self, procs: int, target: str, token: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        for i in range(procs):
            parent_end, child_end = context.Pipe()
            proc = context.Process(target=_worker_main, args=(child_end, target, token), name=f"bench-worker-{i}")
            proc.start()
            child_end.close()
            self._workers.append((proc, parent_end))

    def run(self, phase: Phase, daemon: Measured) -> tuple[Samples, Usage]:
        """Run ``phase`` with its clients split over the workers; returns the samples and the
        daemon's and clients' resource use over the measured window."""
        shares = _split(phase.clients, len(self._workers))
        busy = [(conn, n) for (_, conn), n in zip(self._workers, shares, strict=False) if n]
        for conn, n in busy:
            conn.send(Phase(phase.mode, n, phase.warmup_s, phase.seconds))
        for conn, _ in busy:
            self._expect(conn, "ready", READY_TIMEOUT_S + 10)
        start = time.monotonic()
        for conn, _ in busy:
            conn.send(("go", start))
        _sleep_until(start + phase.warmup_s)
        before = replace(daemon.usage(), client_cpu_s=self._client_cpu())
        _sleep_until(start + phase.warmup_s + phase.seconds)
        used = replace(daemon.usage(), client_cpu_s=self._client_cpu()) - before
        total = Samples()
        for conn, _ in busy:
            total.merge(self._expect(conn, "done", CALL_TIMEOUT_S * 2 + 10))
        return total, used

    def _client_cpu(self) -> float | None:
        """CPU seconds used so far by the worker processes (they share the machine with the daemon)."""
        if psutil is None:
            return None
        try:
            times = [psutil.Process(proc.pid).cpu_times() for proc, _ in self._workers]
        except psutil.Error:
            return None
        return sum(t.user + t.system for t in times)

    def close(self) -> None:
        for _proc, conn in self._workers:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc, _ in self._workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join()

    @staticmethod
    def _expect(conn: Connection, kind: str, timeout: float) -> Any:
        if not conn.poll(timeout):
            raise RuntimeError(f"a worker sent no {kind!r} within {timeout:g}s")
        got, payload = conn.recv()
        if got == "error":
            raise RuntimeError(f"a worker failed:\n{payload}")
        if got != kind:
            raise RuntimeError(f"a worker sent {got!r}, expected {kind!r}")
        return payload


def _split(total: int, parts: int) -> list[int]:
    """Split ``total`` clients over ``parts`` workers as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
