"""Who may call what: every RPC x {no credentials, a wrong token, a client on its own lease, a
client on another's lease, an admin}, over TCP with TLS (bearer tokens) and over the Unix socket
(per-uid local credentials). Refused calls change nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.protocol.v1 import bitshare_pb2_grpc as pb_grpc

from ..support.harness import Daemon, free_port, make_token

OK, UNAUTH, DENIED = "OK", "UNAUTHENTICATED", "PERMISSION_DENIED"
CALLERS = ("none", "wrong", "own", "other", "admin")
Call = Callable[[grpc.Channel, list[tuple[str, str]], str], object]


def _stream_first(responses: Iterator[object]) -> object:
    return next(iter(responses))


def _attach(channel: grpc.Channel, md: list[tuple[str, str]], lease: str) -> object:
    call = pb_grpc.LeaseServiceStub(channel).AttachLease(iter([pb.AttachRequest(lease_id=lease)]), metadata=md)
    try:
        return next(call)
    finally:
        call.cancel()


def _session(channel: grpc.Channel, md: list[tuple[str, str]], lease: str) -> object:
    opening = pb.RemoteRequest(open=pb.RemoteOpen(lease_id=lease))
    call = pb_grpc.RemoteServiceStub(channel).Session(iter([opening]), metadata=md)
    try:
        return next(call)
    finally:
        call.cancel()


def _telemetry(channel: grpc.Channel, md: list[tuple[str, str]], lease: str) -> object:
    call = pb_grpc.AdminServiceStub(channel).WatchTelemetry(pb.WatchTelemetryRequest(min_interval_s=0.1), metadata=md)
    try:
        return next(call)
    finally:
        call.cancel()


def _lease(channel: grpc.Channel) -> pb_grpc.LeaseServiceStub:
    return pb_grpc.LeaseServiceStub(channel)


def _admin(channel: grpc.Channel) -> pb_grpc.AdminServiceStub:
    return pb_grpc.AdminServiceStub(channel)


# Each RPC, called on the target lease (the own/other callers differ only in whose lease it is).
INFO, GPUS = pb.GetServerInfoRequest(), pb.ListGpusRequest()
RPCS: dict[str, tuple[Call, bool, bool]] = {  # name -> (call, needs the admin role, acts on the lease)
    "GetServerInfo": (
        lambda c, md, lease: _lease(c).GetServerInfo(pb.GetServerInfoRequest(), metadata=md),
        False,
        False,
    ),
    "ListGpus": (lambda c, md, lease: _lease(c).ListGpus(pb.ListGpusRequest(), metadata=md), False, False),
    "RequestLease": (
        lambda c, md, lease: _lease(c).RequestLease(
            pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, memory_mib=64, wait=False)), metadata=md
        ),
        False,
        False,
    ),
    "GetLease": (lambda c, md, lease: _lease(c).GetLease(pb.LeaseRef(lease_id=lease), metadata=md), False, True),
    "ListLeases": (lambda c, md, lease: _lease(c).ListLeases(pb.ListLeasesRequest(), metadata=md), False, False),
    "KeepAlive": (
        lambda c, md, lease: _lease(c).KeepAlive(pb.KeepAliveRequest(lease_ids=[lease]), metadata=md),
        False,
        True,
    ),
    "AttachLease": (_attach, False, True),
    "Session": (_session, False, True),
    "ReleaseLease": (
        lambda c, md, lease: _lease(c).ReleaseLease(pb.ReleaseLeaseRequest(lease_id=lease), metadata=md),
        False,
        True,
    ),
    "ListAllLeases": (lambda c, md, lease: _admin(c).ListAllLeases(pb.ListLeasesRequest(), metadata=md), True, False),
    "ListQueue": (lambda c, md, lease: _admin(c).ListQueue(pb.ListLeasesRequest(), metadata=md), True, False),
    "ResizeLease": (
        lambda c, md, lease: _admin(c).ResizeLease(pb.ResizeLeaseRequest(lease_id=lease, memory_mib=64), metadata=md),
        True,
        True,
    ),
    "RevokeLease": (
        lambda c, md, lease: _admin(c).RevokeLease(pb.RevokeLeaseRequest(lease_id=lease, reason="x"), metadata=md),
        True,
        True,
    ),
    "SetPriority": (
        lambda c, md, lease: _admin(c).SetPriority(pb.SetPriorityRequest(lease_id=lease, priority=5), metadata=md),
        True,
        True,
    ),
    "DrainGpu": (lambda c, md, lease: _admin(c).DrainGpu(pb.GpuRef(index=0), metadata=md), True, False),
    "UndrainGpu": (lambda c, md, lease: _admin(c).UndrainGpu(pb.GpuRef(index=0), metadata=md), True, False),
    "ListEvents": (lambda c, md, lease: _admin(c).ListEvents(pb.ListEventsRequest(limit=5), metadata=md), True, False),
    "WatchTelemetry": (_telemetry, True, False),
}


def expected(caller: str, needs_admin: bool, on_lease: bool) -> str:
    if caller in ("none", "wrong"):
        return UNAUTH
    if caller == "admin":
        return OK
    if needs_admin or (caller == "other" and on_lease):
        return DENIED
    return OK


def run_matrix(channel: Callable[[], grpc.Channel], tokens: dict[str, str]) -> dict[tuple[str, str], str]:
    """Every RPC by every caller, each on a fresh lease of the "own" caller's; returns the codes,
    and checks that each refused call left that lease as it was."""
    seen = {}
    for name, (call, _, _) in RPCS.items():
        for caller in CALLERS:
            with channel() as ch:
                owner_md = [("authorization", f"Bearer {tokens['own']}")]
                admin_md = [("authorization", f"Bearer {tokens['admin']}")]
                if name == "SetPriority":  # it orders the queue: its target is a queued request
                    _lease(ch).RequestLease(
                        pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, fraction=1.0)), metadata=admin_md
                    )
                target = _lease(ch).RequestLease(
                    pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, memory_mib=128, wait=True)), metadata=owner_md
                )
                state = target.state
                token = tokens.get(caller, "")
                md = [("authorization", f"Bearer {token}")] if token else []
                try:
                    call(ch, md, target.id)
                    code = OK
                except grpc.RpcError as exc:
                    code = exc.code().name
                seen[(name, caller)] = code
                if code != OK:  # refused: the lease and the GPU are as they were
                    after = _lease(ch).GetLease(pb.LeaseRef(lease_id=target.id), metadata=owner_md)
                    size = [a.memory_mib for a in after.allocations] or [after.spec.memory_mib]
                    assert (after.state, size, after.priority) == (state, [128], 0), (name, caller)
                _admin(ch).UndrainGpu(pb.GpuRef(index=0), metadata=admin_md)
                for lease in _admin(ch).ListAllLeases(pb.ListLeasesRequest(), metadata=admin_md).leases:
                    _admin(ch).RevokeLease(pb.RevokeLeaseRequest(lease_id=lease.id, reason="next"), metadata=admin_md)
    return seen


def check(seen: dict[tuple[str, str], str]) -> None:
    wrong = {
        key: (code, expected(key[1], RPCS[key[0]][1], RPCS[key[0]][2]))
        for key, code in seen.items()
        if code != expected(key[1], RPCS[key[0]][1], RPCS[key[0]][2])
    }
    assert wrong == {}, "(rpc, caller): (got, expected)"
    assert len(seen) == len(RPCS) * len(CALLERS)


def test_over_tcp_with_tls_and_tokens(make_daemon, tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    tokens = {
        "own": make_token(tokens_file, "alice", "client"),
        "other": make_token(tokens_file, "bob", "client"),
        "admin": make_token(tokens_file, "ops", "admin"),
        "wrong": "bst_" + "0" * 40,
    }
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    config = tmp_path / "bitshare.toml"
    config.write_text(f'[security]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    port = free_port()
    make_daemon(
        "--config", str(config), "--simulate", "1x16GiB", "--listen", f"localhost:{port}",
        "--tokens-file", str(tokens_file),
    )  # fmt: skip
    credentials = grpc.ssl_channel_credentials(cert.read_bytes())
    check(run_matrix(lambda: grpc.secure_channel(f"localhost:{port}", credentials), tokens))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_over_the_unix_socket_with_local_credentials() -> None:
    home = Path(tempfile.mkdtemp(prefix="bitshare-authz-"))  # reachable by the other users
    home.chmod(0o755)
    daemon = Daemon(home, ["--simulate", "1x16GiB"]).start()
    try:
        (home / "state").chmod(0o700)

        def token_of(uid: int) -> str:
            program = (
                "from bitshare.address import parse_address; from bitshare.client.connection import local_token; "
                f"print(local_token(parse_address({daemon.server!r})))"
            )
            done = subprocess.run(
                ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c", program],
                capture_output=True,
                text=True,
                check=True,
                env={**daemon.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            )
            return done.stdout.strip()

        tokens = {"own": token_of(4101), "other": token_of(4102), "admin": token_of(0), "wrong": "bst_" + "1" * 40}
        assert len(set(tokens.values())) == 4
        check(run_matrix(lambda: grpc.insecure_channel(daemon.server), tokens))
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
