"""Hostile input against a real daemon: every field of the mutating RPCs fuzzed with random and
boundary values (Hypothesis), an oversized message, and garbage, truncated and silent connections.
The daemon never crashes, answers with a status that says what was wrong (never UNKNOWN or
INTERNAL), and a refused request changes nothing."""

from __future__ import annotations

import math
import os
import socket
import time

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.protocol.v1 import bitshare_pb2_grpc as pb_grpc

from ..support.harness import Daemon, free_port, make_token

REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 0.25, 1.0, 1.0000001, -1.0, math.nan, math.inf]),
)
uint64 = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 255, 256, 16384, 2**32, 2**64 - 1]))
uint32 = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2, 8, 2**31, 2**32 - 1]))
int32 = st.integers(-(2**31), 2**31 - 1)
text = st.one_of(st.text(max_size=300), st.sampled_from(["", "x" * 129, "../../etc", "\x00", "💥" * 100]))


def specs() -> st.SearchStrategy[pb.LeaseSpec]:
    def build(gpu_count, size, fraction, memory, compute, priority, timeout, ttl, name, indices) -> pb.LeaseSpec:
        spec = pb.LeaseSpec(
            gpu_count=gpu_count, compute_pct=compute, priority=priority, wait=False, wait_timeout_s=timeout, ttl_s=ttl
        )
        if size == "fraction":
            spec.fraction = fraction
        elif size == "memory":
            spec.memory_mib = memory
        spec.filter.name = name
        spec.filter.indices.extend(indices)
        return spec

    return st.builds(
        build, uint32, st.sampled_from(["fraction", "memory", "none"]), doubles, uint64, uint32, int32,
        doubles, doubles, text, st.lists(uint32, max_size=4),
    )  # fmt: skip


class Rpc:
    """Raw stubs with a bearer token: what any program on the network can send."""

    def __init__(self, target: str, token: str, options: list | None = None) -> None:
        self.channel = grpc.insecure_channel(target, options=options or [])
        self.md = [("authorization", f"Bearer {token}")]
        self.leases = pb_grpc.LeaseServiceStub(self.channel)
        self.admin = pb_grpc.AdminServiceStub(self.channel)

    def code(self, call, request) -> grpc.StatusCode:
        try:
            call(request, metadata=self.md, timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def books_balance(self) -> None:
        live = self.admin.ListAllLeases(pb.ListLeasesRequest(), metadata=self.md).leases
        for gpu in self.leases.ListGpus(pb.ListGpusRequest(), metadata=self.md).gpus:
            held = sum(a.memory_mib for x in live for a in x.allocations if a.gpu_index == gpu.index)
            assert gpu.granted_mib == held <= gpu.capacity_mib


def start(make_daemon, tmp_path) -> tuple[Daemon, str, str]:
    tokens = tmp_path / "tokens.toml"
    admin = make_token(tokens, "ops", "admin")
    port = free_port()
    daemon = make_daemon("--simulate", "2x16GiB", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(tokens))
    return daemon, f"127.0.0.1:{port}", admin


def test_fuzzed_lease_requests_are_granted_or_refused_with_a_clear_status(make_daemon, tmp_path) -> None:
    daemon, target, admin = start(make_daemon, tmp_path)
    rpc = Rpc(target, admin)

    @FUZZ
    @given(spec=specs(), request_id=text, host=text, command=text)
    def request(spec: pb.LeaseSpec, request_id: str, host: str, command: str) -> None:
        message = pb.RequestLeaseRequest(request_id=request_id, spec=spec, client_host=host, command=command)
        try:
            lease = rpc.leases.RequestLease(message, metadata=rpc.md, timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() in REFUSALS, (exc.code(), exc.details(), spec)
            assert exc.details() and "\n" not in exc.details().strip()
            assert not rpc.admin.ListAllLeases(pb.ListLeasesRequest(), metadata=rpc.md).leases
            return
        assert lease.state in (pb.LEASE_STATE_ACTIVE, pb.LEASE_STATE_QUEUED)
        rpc.books_balance()
        rpc.leases.ReleaseLease(pb.ReleaseLeaseRequest(lease_id=lease.id), metadata=rpc.md)

    request()
    assert daemon.proc.poll() is None


def test_fuzzed_admin_actions_change_nothing_when_refused(make_daemon, tmp_path) -> None:
    daemon, target, admin = start(make_daemon, tmp_path)
    rpc = Rpc(target, admin)
    held = rpc.leases.RequestLease(
        pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, memory_mib=4096)), metadata=rpc.md
    )

    def snapshot() -> tuple:
        lease = rpc.leases.GetLease(pb.LeaseRef(lease_id=held.id), metadata=rpc.md)
        gpus = rpc.leases.ListGpus(pb.ListGpusRequest(), metadata=rpc.md).gpus
        return (lease.state, [a.memory_mib for a in lease.allocations], lease.priority, [g.drained for g in gpus])

    @FUZZ
    @given(
        lease_id=st.one_of(text, st.just(held.id)),
        size=st.sampled_from(["fraction", "memory", "none"]),
        fraction=doubles,
        memory=uint64,
        priority=int32,
        index=uint32,
        limit=uint32,
        reason=text,
    )
    def act(lease_id, size, fraction, memory, priority, index, limit, reason) -> None:
        before = snapshot()
        resize = pb.ResizeLeaseRequest(lease_id=lease_id)
        if size == "fraction":
            resize.fraction = fraction
        elif size == "memory":
            resize.memory_mib = memory
        calls = [
            (rpc.admin.ResizeLease, resize),
            (rpc.admin.SetPriority, pb.SetPriorityRequest(lease_id=lease_id, priority=priority)),
            (rpc.admin.DrainGpu, pb.GpuRef(index=index)),
            (rpc.admin.ListEvents, pb.ListEventsRequest(limit=limit, lease_id=lease_id)),
            (rpc.leases.GetLease, pb.LeaseRef(lease_id=lease_id)),
            (rpc.leases.KeepAlive, pb.KeepAliveRequest(lease_ids=[lease_id])),
        ]
        for call, message in calls:
            code = rpc.code(call, message)
            assert code == grpc.StatusCode.OK or code in REFUSALS, (call, code, message)
            if code != grpc.StatusCode.OK:
                assert snapshot() == before, (call, message)
            else:  # undo what was allowed, so every example starts from the same state
                rpc.admin.UndrainGpu(pb.GpuRef(index=min(index, 1)), metadata=rpc.md)
                before = snapshot()
        rpc.books_balance()
        if lease_id != held.id:  # a revoke of something that does not exist: refused, nothing ends
            code = rpc.code(rpc.admin.RevokeLease, pb.RevokeLeaseRequest(lease_id=lease_id, reason=reason))
            assert code in REFUSALS and snapshot()[0] == pb.LEASE_STATE_ACTIVE

    act()
    assert daemon.proc.poll() is None


def test_an_oversized_message_is_refused_and_changes_nothing(make_daemon, tmp_path) -> None:
    daemon, target, admin = start(make_daemon, tmp_path)
    big = 80 * 1024 * 1024  # past the daemon's 64 MiB limit
    rpc = Rpc(target, admin, [("grpc.max_send_message_length", big + 1024)])
    message = pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, memory_mib=256), command="x" * big)
    assert rpc.code(rpc.leases.RequestLease, message) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not rpc.admin.ListAllLeases(pb.ListLeasesRequest(), metadata=rpc.md).leases
    assert daemon.proc.poll() is None


def test_garbage_truncated_and_silent_connections_harm_no_one(make_daemon, tmp_path) -> None:
    daemon, target, admin = start(make_daemon, tmp_path)
    host, port = target.split(":")
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    silent = [socket.create_connection((host, int(port))) for _ in range(20)]  # connect, send nothing
    for payload in (os.urandom(4096), preface[:10], preface + os.urandom(64), b"GET / HTTP/1.1\r\n\r\n"):
        with socket.create_connection((host, int(port))) as rude:
            rude.sendall(payload)
            rude.shutdown(socket.SHUT_WR)  # and hang up half-way
    rpc = Rpc(target, admin)
    started = time.monotonic()
    lease = rpc.leases.RequestLease(
        pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, memory_mib=256)), metadata=rpc.md
    )
    assert lease.state == pb.LEASE_STATE_ACTIVE and time.monotonic() - started < 5
    # A stream cut in the middle: the attach stream opened, then the connection dropped.
    stream = rpc.leases.AttachLease(iter([pb.AttachRequest(lease_id=lease.id)]), metadata=rpc.md)
    next(stream)
    rpc.channel.close()
    for conn in silent:
        conn.close()
    again = Rpc(target, admin)
    assert again.leases.GetLease(pb.LeaseRef(lease_id=lease.id), metadata=again.md).state == pb.LEASE_STATE_ACTIVE
    assert daemon.proc.poll() is None


def test_the_other_rpcs_fuzzed_answer_clearly(make_daemon, tmp_path) -> None:
    daemon, target, admin = start(make_daemon, tmp_path)
    rpc = Rpc(target, admin)
    held = rpc.leases.RequestLease(
        pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, memory_mib=512)), metadata=rpc.md
    )

    @FUZZ
    @given(
        lease_id=st.one_of(text, st.just(held.id)),
        ids=st.lists(st.one_of(text, st.just(held.id)), max_size=20),
        ended=st.booleans(),
        interval=doubles,
        limit=uint32,
    )
    def call_all(lease_id, ids, ended, interval, limit) -> None:
        unary = [
            (rpc.leases.GetServerInfo, pb.GetServerInfoRequest()),
            (rpc.leases.ListGpus, pb.ListGpusRequest()),
            (rpc.leases.ListLeases, pb.ListLeasesRequest(include_ended=ended)),
            (rpc.leases.KeepAlive, pb.KeepAliveRequest(lease_ids=ids)),
            (rpc.admin.ListAllLeases, pb.ListLeasesRequest(include_ended=ended)),
            (rpc.admin.ListQueue, pb.ListLeasesRequest(include_ended=ended)),
            (rpc.admin.ListEvents, pb.ListEventsRequest(limit=limit)),
        ]
        for call, message in unary:
            code = rpc.code(call, message)
            assert code == grpc.StatusCode.OK or code in REFUSALS, (call, code, message)
        streams = [
            (rpc.leases.AttachLease, iter([pb.AttachRequest(lease_id=lease_id)])),
            (rpc.admin.WatchTelemetry, pb.WatchTelemetryRequest(min_interval_s=interval)),
        ]
        for call, message in streams:
            stream = call(message, metadata=rpc.md, timeout=10)
            try:
                next(stream)
                refused = False
            except grpc.RpcError as exc:
                assert exc.code() in REFUSALS, (call, exc.code(), exc.details())
                refused = True
            finally:
                stream.cancel()
            if call == rpc.admin.WatchTelemetry:
                assert refused == (not 0 <= interval <= 3600), interval
        if lease_id != held.id:
            assert rpc.code(rpc.leases.ReleaseLease, pb.ReleaseLeaseRequest(lease_id=lease_id)) in REFUSALS
        assert rpc.leases.GetLease(pb.LeaseRef(lease_id=held.id), metadata=rpc.md).state == pb.LEASE_STATE_ACTIVE
        rpc.books_balance()

    call_all()
    assert daemon.proc.poll() is None
