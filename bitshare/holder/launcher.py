"""``bitshare run``, ``request-gpus`` and ``client``: hold a lease and run commands on it."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TextIO

from ..client.connection import Client, LeaseRequest
from ..client.placement import place
from ..errors import BitshareError, LeaseLost, NoLease, Unreachable
from ..present.leases import state_name
from ..present.printable import printable
from ..protocol.v1 import bitshare_pb2 as pb
from .agent_hub import AgentHub
from .environment import has_local_gpu, lease_environment, remote_environment
from .keeper import ENDED_STATES, LeaseKeeper
from .process import Supervised, exit_code

EXIT_INTERRUPTED = 130
RELEASE_BACKOFF_S = (0.05, 1.0)  # first and longest wait between tries to release while bitshared is away


def _describe_end(lease: pb.Lease) -> str:
    state = state_name(lease.state).replace("_", " ")
    return f"lease {lease.id} {state}" + (f": {lease.end_reason}" if lease.end_reason else "")


def say(stream: TextIO, text: str) -> None:
    """One ``bitshare: ...`` line on the holder's terminal. What the daemon sends (a revoke's reason,
    a warning, an error's details) is made printable: it must not act on the terminal."""
    with contextlib.suppress(OSError, ValueError):  # a closed or broken stderr must not end the holder
        stream.write(f"bitshare: {printable(text)}\n")
        stream.flush()


class QueueProgress:
    """The live "queued" line: rewritten in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last = ""

    def show(self, lease: pb.Lease) -> None:
        waited = time.monotonic() - self.started
        line = f"bitshare: lease {printable(lease.id)} queued at position {lease.queue_position}"
        if self.tty:
            self.stream.write(f"\r{line}, waited {waited:.0f}s\x1b[K")
            self.stream.flush()
        elif line != self._last:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last = line

    def done(self) -> None:
        if self.tty and self._last:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def obtain(
    pool: list[Client], request: LeaseRequest, stderr: TextIO = sys.stderr
) -> tuple[Client, pb.Lease, LeaseKeeper]:
    """Request a lease from the pool and wait until it is granted, showing the queue position meanwhile.

    Returns the daemon, the granted lease and its running keeper. On Ctrl-C or any failure
    the request is withdrawn, so nothing is left queued or held.
    """
    client, lease = place(pool, request)
    try:
        keeper = LeaseKeeper(client, lease).start()
    except BaseException:
        _withdraw(client, lease.id)
        raise
    try:
        if lease.state == pb.LEASE_STATE_QUEUED:
            progress = QueueProgress(stderr)
            progress.show(lease)
            while True:
                keeper.wait(lambda: keeper.lease.state != pb.LEASE_STATE_QUEUED or keeper.ended, 1.0)
                if keeper.lease.state != pb.LEASE_STATE_QUEUED or keeper.ended:
                    break
                progress.show(keeper.lease)
            progress.done()
            lease = keeper.lease
        if keeper.lost_reason:
            raise LeaseLost(keeper.lost_reason)
        if lease.state == pb.LEASE_STATE_TIMED_OUT:
            raise NoLease(
                f"no GPU partition became free within {request.wait_timeout_s:g}s (lease {lease.id} timed out)"
            )
        if lease.state in ENDED_STATES:
            raise LeaseLost(_describe_end(lease))
        return client, lease, keeper
    except BaseException:
        keeper.stop()
        _withdraw(client, lease.id)
        raise


def _withdraw(client: Client, lease_id: str) -> None:
    with contextlib.suppress(BitshareError):
        client.release(lease_id)


def run_on_lease(
    client: Client,
    lease: pb.Lease,
    keeper: LeaseKeeper,
    argv: list[str],
    kill_grace_s: float,
    stderr: TextIO = sys.stderr,
    agent: bool = True,
    remote: bool | None = None,
) -> int:
    """Run ``argv`` with the lease in its environment; end it if the lease ends first.

    On the daemon's own host the command's processes are named to the daemon (which
    measures them and ends them with the lease), and ``agent`` starts the in-process
    agent in its Python processes. ``remote`` (default: when the leased GPUs are not
    usable from here) makes the command's ``import cupy`` run arrays on the lease's worker.
    """
    local = client.address.kind == "unix"
    if remote is None:
        remote = lease.simulated or not client.address.is_loopback or not has_local_gpu()
    env = dict(os.environ)
    simgpu = client.info.simgpu_directory if local else ""
    env.update(lease_environment(lease, str(client.address), client.address.is_loopback, simgpu, remote))
    if remote:
        env.update(remote_environment(env, *client.credentials))
    # The agent limits libraries on this host's GPUs: only useful when the leased GPUs are here.
    hub = _agent_hub(lease, stderr) if agent and client.address.is_loopback else None
    if hub is not None:
        env.update(hub.environment(env))
        hub.on_change = lambda: keeper.report(agent=hub.active)
    relay = _EventRelay(hub, stderr)
    keeper.listeners.append(relay)
    try:
        child = Supervised(argv, env, on_exit=keeper.notify)  # CommandNotFound: exit 127
        keeper.usage = child.cpu_seconds
        if local:
            keeper.report(pids=[child.pid])
        with child.foreground():
            while not keeper.wait(lambda: keeper.ended or child.exited.is_set(), 1.0):
                pass  # a timeout only lets forwarded signals be handled promptly
            if not child.exited.is_set():
                why = keeper.lost_reason or _describe_end(keeper.lease)
                say(stderr, f"{why}; ending the command")
                child.terminate(kill_grace_s)
    finally:
        keeper.listeners.remove(relay)
        if hub is not None:
            hub.close()
    assert child.returncode is not None
    return exit_code(child.returncode)


def _agent_hub(lease: pb.Lease, stderr: TextIO) -> AgentHub | None:
    try:
        return AgentHub([a.memory_mib for a in lease.allocations])
    except OSError as exc:  # the command still runs, held by the other tiers
        say(stderr, f"warning: running without the in-process agent: {exc}")
        return None


class _EventRelay:
    """Lease events the command should know of: resizes go to its agents, warnings to stderr."""

    def __init__(self, hub: AgentHub | None, stderr: TextIO) -> None:
        self.hub = hub
        self.stderr = stderr

    def __call__(self, event: pb.LeaseEvent) -> None:
        if event.kind == pb.LeaseEvent.KIND_RESIZED:
            sizes = [a.memory_mib for a in event.lease.allocations]
            if self.hub is not None:
                self.hub.resize(sizes)
            self._say(f"lease {event.lease.id} resized to {', '.join(f'{s} MiB' for s in sizes)}")
        elif event.kind == pb.LeaseEvent.KIND_WARNING:
            self._say(f"warning: lease {event.lease.id}: {event.message}")

    def _say(self, text: str) -> None:
        say(self.stderr, text)


def run_command(
    pool: list[Client],
    request: LeaseRequest,
    argv: list[str],
    kill_grace_s: float = 10.0,
    stderr: TextIO = sys.stderr,
    agent: bool = True,
    remote: bool | None = None,
) -> int:
    """``bitshare run``: obtain a lease, run the command on it, release it, return the command's code."""
    try:
        client, lease, keeper = obtain(pool, request, stderr)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    try:
        return run_on_lease(client, lease, keeper, argv, kill_grace_s, stderr, agent, remote)
    finally:
        keeper.stop()
        if not keeper.ended:
            release(client, lease.id, keeper.ttl_s, stderr)


def release(client: Client, lease_id: str, ttl_s: float, stderr: TextIO) -> None:
    """Give the lease back. While bitshared is away (a restart) try again, on fresh connections,
    until the lease's TTL has passed: by then the daemon expires it anyway."""
    deadline = time.monotonic() + ttl_s
    wait = RELEASE_BACKOFF_S[0]
    attempt = client
    while True:
        try:
            attempt.release(lease_id)
            return
        except Unreachable as exc:
            if time.monotonic() + wait > deadline:
                say(stderr, f"could not release lease {lease_id}: {exc}")
                return
        except BitshareError as exc:
            if not _released_already(attempt, lease_id):
                say(stderr, f"could not release lease {lease_id}: {exc}")
            return
        finally:
            if attempt is not client:
                attempt.close()
        time.sleep(wait)
        wait = min(wait * 2, RELEASE_BACKOFF_S[1])
        try:
            attempt = client.clone()  # a failed channel may sit in gRPC's reconnect backoff
        except BitshareError:
            attempt = client


def _released_already(client: Client, lease_id: str) -> bool:
    """A release retried after its reply was lost (the daemon died just after committing it)."""
    try:
        return client.get(lease_id).state == pb.LEASE_STATE_RELEASED
    except BitshareError:
        return False


def run_in_session(
    client: Client,
    lease_id: str,
    argv: list[str],
    kill_grace_s: float = 10.0,
    stderr: TextIO = sys.stderr,
    agent: bool = True,
    remote: bool | None = None,
) -> int:
    """``bitshare client``: run a command on a lease held by a session; the lease stays afterwards."""
    lease = client.get(lease_id)
    if lease.state != pb.LEASE_STATE_ACTIVE:
        raise LeaseLost(_describe_end(lease) if lease.state in ENDED_STATES else f"lease {lease_id} is still queued")
    keeper = LeaseKeeper(client, lease).start()
    try:
        return run_on_lease(client, lease, keeper, argv, kill_grace_s, stderr, agent, remote)
    finally:
        keeper.stop()


def wait_for_grant(pool: list[Client], request: LeaseRequest, stderr: TextIO = sys.stderr) -> tuple[Client, pb.Lease]:
    """``bitshare request-gpus``: obtain the lease and leave it held for the session's TTL."""
    client, lease, keeper = obtain(pool, request, stderr)
    keeper.stop()
    return client, lease
