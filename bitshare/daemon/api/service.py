"""The gRPC services: authenticate, check fields, call the lease manager, map errors to status codes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import grpc

from ... import API_VERSION, __version__
from ...errors import REFUSALS, BitshareError, Denied, UsageError
from ...protocol.status import status_of
from ...protocol.v1 import bitshare_pb2 as pb
from ...protocol.v1 import bitshare_pb2_grpc as pb_grpc
from ..enforcement.enforcer import Enforcer
from ..enforcement.processes import ClaimRefused
from ..state.manager import LeaseManager, LeaseUpdate, UpdateKind
from ..state.model import Lease, LeaseState
from .auth import Authenticator, Identity
from .convert import (
    MAX_PRIORITY,
    MAX_TEXT,
    gpu_to_pb,
    lease_to_pb,
    process_to_pb,
    size_from_pb,
    spec_from_pb,
    timestamp,
    usage_to_pb,
)

T = TypeVar("T")

_UPDATE_KIND = {
    UpdateKind.SNAPSHOT: pb.LeaseEvent.KIND_SNAPSHOT,
    UpdateKind.QUEUE_MOVED: pb.LeaseEvent.KIND_QUEUE_MOVED,
    UpdateKind.GRANTED: pb.LeaseEvent.KIND_GRANTED,
    UpdateKind.RESIZED: pb.LeaseEvent.KIND_RESIZED,
    UpdateKind.ENDED: pb.LeaseEvent.KIND_ENDED,
    UpdateKind.WARNING: pb.LeaseEvent.KIND_WARNING,
}
MAX_PIDS = 64
SLURM_JOB_ID = re.compile(r"[0-9]{1,20}")
MAX_TELEMETRY_INTERVAL_S = 3600.0  # WatchTelemetry: at most one snapshot per this many seconds


class Shared:
    """What both services share: the manager, the caller's identity and the server's facts."""

    def __init__(
        self,
        manager: LeaseManager,
        auth: Authenticator,
        backend: str,
        simulated: bool,
        started_at: float,
        enforcer: Enforcer,
        simgpu_directory: str = "",
        runtime_dir: str = "",
        max_client_priority: int = 0,
    ) -> None:
        self.manager = manager
        self.max_client_priority = max_client_priority  # clients ask at most this; admins anything in range
        self.enforcer = enforcer
        self.simgpu_directory = simgpu_directory
        self.runtime_dir = runtime_dir  # remote sessions' data sockets live under it
        self.auth = auth
        self.backend = backend
        self.simulated = simulated
        self.started_at = started_at
        self.hostname = socket.gethostname()

    async def identify(self, context: grpc.aio.ServicerContext) -> Identity:
        token = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str) and value.lower().startswith("bearer "):
                token = value[7:].strip()
        via_unix = context.peer().startswith("unix:")
        identity = self.auth.identify(token, via_unix) if token else None
        if identity is None:
            what = "no credentials" if not token else "an unknown or invalid token"
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"bitshared refuses {what}")
        return identity  # type: ignore[return-value]

    async def require_admin(self, context: grpc.aio.ServicerContext, method: str) -> Identity:
        identity = await self.identify(context)
        if not identity.is_admin:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"{method} needs the admin role; {identity.name} is a client"
            )
        return identity

    def lease_pb(self, lease: Lease, position: int | None = None) -> pb.Lease:
        if position is None:
            position = self.manager.queue_position(lease.id) if lease.state is LeaseState.QUEUED else 0
        message = lease_to_pb(lease, self.manager.gpu_labels, self.simulated, position)
        if lease.state is LeaseState.ACTIVE:
            enforcer = self.enforcer
            message.enforcement = enforcer.tier(lease)
            for allocation in message.allocations:
                allocation.mps_pipe_directory = enforcer.mps_pipe(lease, allocation.gpu_index)
            measured = enforcer.measured.get(lease.id)
            if measured is not None:
                over_since, ends_at = enforcer.over_limit(lease.id)
                message.usage.CopyFrom(usage_to_pb(measured, enforcer.labels, over_since, ends_at))
        return message

    def gpus_pb(self, viewer: str | None) -> list[pb.Gpu]:
        """Every GPU with what was measured on it; ``viewer`` as for :func:`gpu_to_pb`."""
        enforcer = self.enforcer
        gpus = []
        for view in self.manager.gpus():
            index = view.gpu.index
            unleased = [process_to_pb(p, enforcer.labels) for p in enforcer.unleased if p.gpu_index == index]
            message = gpu_to_pb(view, self.backend, self.simulated, viewer, enforcer.gpu_samples.get(index), unleased)
            message.mps = enforcer.mps_up.get(index, False)
            gpus.append(message)
        return gpus

    def check_priority(self, identity: Identity, priority: int) -> None:
        """Refuse a client's priority above the ceiling rather than lower it: a request quietly
        queued lower than asked would wait where its owner does not expect it."""
        ceiling = self.max_client_priority
        if priority > ceiling and not identity.is_admin:
            raise Denied(
                f"priority {priority} is above the clients' ceiling of {ceiling} (max_client_priority); "
                "higher priorities are given by an admin (bitshare lease priority)"
            )

    async def owned_lease(self, identity: Identity, lease_id: str) -> Lease:
        """The lease as committed, if the caller may act on it."""
        lease = await self.manager.lease(lease_id)
        if lease.owner != identity.name and not identity.is_admin:
            raise Denied(f"lease {lease_id} belongs to another user")
        return lease

    def server_info(self, identity: Identity) -> pb.ServerInfo:
        return pb.ServerInfo(
            version=__version__,
            api_version=API_VERSION,
            backend=self.backend,
            simulated=self.simulated,
            hostname=self.hostname,
            caller=identity.name,
            caller_role=pb.ROLE_ADMIN if identity.is_admin else pb.ROLE_CLIENT,
            lease_ttl_s=self.manager.policy.lease_ttl_s,
            gpu_count=self.manager.gpu_count,
            started_at=timestamp(self.started_at),
            mps=any(self.enforcer.mps_up.values()),
            simgpu_directory=self.simgpu_directory,
            watchdog=self.enforcer.watchdog_policy.mode,
            grace_s=self.enforcer.watchdog_policy.grace_s,
        )


async def _reraise(exc: Exception) -> None:
    """An awaitable that raises ``exc``, for :func:`guarded` to turn into the stream's status."""
    raise exc


async def guarded(context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
    """Await ``work``, turning refusals into the gRPC statuses their classes declare. A store that
    cannot be written refuses the change (UNAVAILABLE): the daemon goes on serving what it has,
    granting nothing new."""
    try:
        return await work
    except BitshareError as exc:
        await context.abort(status_of(exc), str(exc))
    raise AssertionError("context.abort returned")


def _check_id(text: str, what: str) -> None:
    if not text:
        raise UsageError(f"{what} is empty")
    if len(text) > 128:
        raise UsageError(f"{what} is longer than 128 characters")


class LeaseService(pb_grpc.LeaseServiceServicer):
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.manager = shared.manager

    async def GetServerInfo(self, request: pb.GetServerInfoRequest, context: grpc.aio.ServicerContext) -> pb.ServerInfo:
        identity = await self.shared.identify(context)
        return self.shared.server_info(identity)

    async def ListGpus(self, request: pb.ListGpusRequest, context: grpc.aio.ServicerContext) -> pb.ListGpusResponse:
        identity = await self.shared.identify(context)
        viewer = None if identity.is_admin else identity.name
        return pb.ListGpusResponse(gpus=self.shared.gpus_pb(viewer))

    async def RequestLease(self, request: pb.RequestLeaseRequest, context: grpc.aio.ServicerContext) -> pb.Lease:
        identity = await self.shared.identify(context)
        return await guarded(context, self._request(identity, request))

    async def _request(self, identity: Identity, request: pb.RequestLeaseRequest) -> pb.Lease:
        if request.request_id:
            _check_id(request.request_id, "request id")
        if len(request.command) > MAX_TEXT or len(request.client_host) > 255:
            raise UsageError("command or client host is too long")
        spec = spec_from_pb(request.spec)
        self.shared.check_priority(identity, spec.priority)
        owner = self._owner(identity, request)
        # A retry (a request id seen before) is answered with the lease its first attempt made.
        lease = await self.manager.submit(
            uuid.uuid4().hex[:12],
            owner.name,
            spec,
            request_id=request.request_id,
            actor=identity.name,
            client_host=request.client_host,
            command=request.command,
            slurm_job=request.slurm_job,
            mps_uid=self.shared.enforcer.mps_uid(owner.uid, spec.gpu_count),
        )
        return self.shared.lease_pb(lease)

    def _owner(self, identity: Identity, request: pb.RequestLeaseRequest) -> Identity:
        """Who the lease is for: the caller, or the local user an admin names (a Slurm prolog
        asks for the job's user)."""
        if not (request.owner_user or request.slurm_job):
            return identity
        if not identity.is_admin:
            raise Denied("only an admin may ask for a lease for another user or for a Slurm job")
        if request.slurm_job and not SLURM_JOB_ID.fullmatch(request.slurm_job):
            raise UsageError(f"Slurm job id {request.slurm_job[:40]!r} is not a number")
        if not request.owner_user:
            return identity
        return self.shared.auth.local_user(request.owner_user)

    async def GetLease(self, request: pb.LeaseRef, context: grpc.aio.ServicerContext) -> pb.Lease:
        identity = await self.shared.identify(context)

        async def get() -> pb.Lease:
            _check_id(request.lease_id, "lease id")
            return self.shared.lease_pb(await self.shared.owned_lease(identity, request.lease_id))

        return await guarded(context, get())

    async def ListLeases(
        self, request: pb.ListLeasesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListLeasesResponse:
        identity = await self.shared.identify(context)
        return _list_leases(self.shared, request, owner=identity.name)

    async def ReleaseLease(self, request: pb.ReleaseLeaseRequest, context: grpc.aio.ServicerContext) -> pb.Lease:
        identity = await self.shared.identify(context)

        async def release() -> pb.Lease:
            _check_id(request.lease_id, "lease id")
            await self.shared.owned_lease(identity, request.lease_id)
            return self.shared.lease_pb(await self.manager.release(request.lease_id, identity.name))

        return await guarded(context, release())

    async def KeepAlive(self, request: pb.KeepAliveRequest, context: grpc.aio.ServicerContext) -> pb.KeepAliveResponse:
        identity = await self.shared.identify(context)

        async def keep_alive() -> pb.KeepAliveResponse:
            leases = []
            for lease_id in request.lease_ids:
                _check_id(lease_id, "lease id")
                lease = await self.shared.owned_lease(identity, lease_id)
                if not lease.state.ended:
                    lease = self.manager.heartbeat(lease_id)
                leases.append(self.shared.lease_pb(lease))
            return pb.KeepAliveResponse(leases=leases)

        return await guarded(context, keep_alive())

    async def AttachLease(
        self, request_iterator: AsyncIterator[pb.AttachRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.LeaseEvent]:
        identity = await self.shared.identify(context)
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        lease_id = first.lease_id

        async def find() -> Lease:
            _check_id(lease_id, "lease id")
            return await self.shared.owned_lease(identity, lease_id)

        lease = await guarded(context, find())
        updates = self.manager.watch(lease_id)
        # This stream's own refusals of a holder's report end this stream only.
        refused: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        heartbeats = asyncio.ensure_future(
            self._read_heartbeats(identity, lease_id, request_iterator, updates, refused)
        )
        try:
            await guarded(context, self._report(identity, lease, first, updates))
            if not lease.state.ended:
                self.manager.heartbeat(lease_id)
            yield self._event(LeaseUpdate(UpdateKind.SNAPSHOT, lease))
            while not lease.state.ended:
                update = await updates.get()
                if update.kind is UpdateKind.REFUSED:
                    await guarded(context, _reraise(refused.result()))
                lease = update.lease
                yield self._event(update)
        finally:
            heartbeats.cancel()
            self.manager.unwatch(lease_id, updates)
            # Waited for, and its outcome taken: an error of the request stream ends with this
            # call instead of being logged later as never retrieved.
            await asyncio.wait([heartbeats])
            if not heartbeats.cancelled():
                heartbeats.exception()

    async def _report(
        self, identity: Identity, lease: Lease, beat: pb.AttachRequest, updates: asyncio.Queue[LeaseUpdate]
    ) -> None:
        """Hand the holder's report (its processes, its agent) to enforcement. A malformed report
        ends the stream; processes the caller may not name are left out, and the holder is told."""
        if lease.state is not LeaseState.ACTIVE:
            return
        if beat.pids and identity.uid is None:
            raise UsageError("processes can be named only over the daemon's local Unix socket")
        if len(beat.pids) > MAX_PIDS:
            raise UsageError(f"at most {MAX_PIDS} processes can be named per lease")
        try:
            self.shared.enforcer.report(lease.id, identity.uid or 0, list(beat.pids), beat.agent)
        except ClaimRefused as exc:
            updates.put_nowait(LeaseUpdate(UpdateKind.WARNING, lease, f"processes not measured: {exc}"))

    async def _read_heartbeats(
        self,
        identity: Identity,
        lease_id: str,
        request_iterator: AsyncIterator[pb.AttachRequest],
        updates: asyncio.Queue[LeaseUpdate],
        refused: asyncio.Future[Exception],
    ) -> None:
        async for beat in request_iterator:
            with contextlib.suppress(*REFUSALS):
                lease = self.manager.heartbeat(lease_id, beat.cpu_seconds)
                # The answer to a heartbeat: the holder counts it as contact with the daemon.
                updates.put_nowait(LeaseUpdate(UpdateKind.SNAPSHOT, lease))
                try:
                    await self._report(identity, lease, beat, updates)
                except REFUSALS as exc:
                    refused.set_result(exc)
                    updates.put_nowait(LeaseUpdate(UpdateKind.REFUSED, lease, str(exc)))
                    return

    def _event(self, update: LeaseUpdate) -> pb.LeaseEvent:
        position = update.queue_position if update.kind is UpdateKind.QUEUE_MOVED else None
        return pb.LeaseEvent(
            kind=_UPDATE_KIND[update.kind],
            lease=self.shared.lease_pb(update.lease, position),
            message=update.message,
        )


def _list_leases(shared: Shared, request: pb.ListLeasesRequest, owner: str | None) -> pb.ListLeasesResponse:
    manager = shared.manager
    positions = manager.queue_positions()
    leases = manager.live()
    if request.include_ended:
        leases = manager.recently_ended(1000) + leases
    job = request.slurm_job
    mine = [lease for lease in leases if owner in (None, lease.owner) and job in ("", lease.slurm_job)]
    out = [shared.lease_pb(lease, positions.get(lease.id, 0)) for lease in mine]
    return pb.ListLeasesResponse(leases=out)


class AdminService(pb_grpc.AdminServiceServicer):
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.manager = shared.manager

    async def ListAllLeases(
        self, request: pb.ListLeasesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListLeasesResponse:
        await self.shared.require_admin(context, "ListAllLeases")
        return _list_leases(self.shared, request, owner=None)

    async def ListQueue(
        self, request: pb.ListLeasesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListLeasesResponse:
        await self.shared.require_admin(context, "ListQueue")
        queue = self.manager.queue()
        return pb.ListLeasesResponse(leases=[self.shared.lease_pb(lease, i + 1) for i, lease in enumerate(queue)])

    async def ResizeLease(self, request: pb.ResizeLeaseRequest, context: grpc.aio.ServicerContext) -> pb.Lease:
        identity = await self.shared.require_admin(context, "ResizeLease")

        async def resize() -> pb.Lease:
            _check_id(request.lease_id, "lease id")
            lease = await self.manager.resize(request.lease_id, size_from_pb(request), identity.name)
            return self.shared.lease_pb(lease)

        return await guarded(context, resize())

    async def RevokeLease(self, request: pb.RevokeLeaseRequest, context: grpc.aio.ServicerContext) -> pb.Lease:
        identity = await self.shared.require_admin(context, "RevokeLease")

        async def revoke() -> pb.Lease:
            _check_id(request.lease_id, "lease id")
            if len(request.reason) > MAX_TEXT:
                raise UsageError("reason is too long")
            reason = request.reason or f"revoked by {identity.name}"
            return self.shared.lease_pb(await self.manager.revoke(request.lease_id, reason, identity.name))

        return await guarded(context, revoke())

    async def SetPriority(self, request: pb.SetPriorityRequest, context: grpc.aio.ServicerContext) -> pb.Lease:
        identity = await self.shared.require_admin(context, "SetPriority")

        async def set_priority() -> pb.Lease:
            _check_id(request.lease_id, "lease id")
            if abs(request.priority) > MAX_PRIORITY:
                raise UsageError(f"priority must be within +-{MAX_PRIORITY}")
            lease = await self.manager.set_priority(request.lease_id, request.priority, identity.name)
            return self.shared.lease_pb(lease)

        return await guarded(context, set_priority())

    async def DrainGpu(self, request: pb.GpuRef, context: grpc.aio.ServicerContext) -> pb.Gpu:
        return await self._drain(request, context, True)

    async def UndrainGpu(self, request: pb.GpuRef, context: grpc.aio.ServicerContext) -> pb.Gpu:
        return await self._drain(request, context, False)

    async def _drain(self, request: pb.GpuRef, context: grpc.aio.ServicerContext, drained: bool) -> pb.Gpu:
        identity = await self.shared.require_admin(context, "DrainGpu" if drained else "UndrainGpu")
        gpu = await guarded(context, self.manager.drain(request.index, drained, identity.name))
        return next(g for g in self.shared.gpus_pb(None) if g.index == gpu.index)

    async def ListEvents(
        self, request: pb.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEventsResponse:
        await self.shared.require_admin(context, "ListEvents")
        limit = min(request.limit or 100, 10_000)
        records = await self.manager.load_events(limit, request.lease_id)
        return pb.ListEventsResponse(
            events=[
                pb.Event(at=timestamp(r.at), kind=r.kind, lease_id=r.lease_id, detail=r.detail, actor=r.actor)
                for r in records
            ]
        )

    async def WatchTelemetry(
        self, request: pb.WatchTelemetryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TelemetrySnapshot]:
        identity = await self.shared.require_admin(context, "WatchTelemetry")
        if not 0 <= request.min_interval_s <= MAX_TELEMETRY_INTERVAL_S:  # NaN fails this too
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"min_interval_s must be between 0 and {MAX_TELEMETRY_INTERVAL_S:g} seconds",
            )
        interval = request.min_interval_s if request.min_interval_s > 0 else 0.5
        while True:
            ledger_version = self.manager.version
            yield self._snapshot(identity)
            await asyncio.sleep(interval)  # rate limit: at most one snapshot per interval
            await self.manager.wait_changed(since=ledger_version, timeout=max(1.0, interval))

    def _snapshot(self, identity: Identity) -> pb.TelemetrySnapshot:
        manager = self.manager
        positions = manager.queue_positions()
        return pb.TelemetrySnapshot(
            server=self.shared.server_info(identity),
            gpus=self.shared.gpus_pb(None),
            leases=[self.shared.lease_pb(lease, positions.get(lease.id, 0)) for lease in manager.live()],
            version=manager.version,
        )
