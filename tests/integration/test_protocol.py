"""The generated code matches the .proto; health checking and reflection answer."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ..support.harness import ROOT, Daemon


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), str(tmp_path)], check=True, capture_output=True
    )
    package = Path("bitshare") / "protocol" / "v1"
    generated = sorted(p.name for p in (tmp_path / package).glob("*_pb2*"))
    assert generated == ["bitshare_pb2.py", "bitshare_pb2.pyi", "bitshare_pb2_grpc.py"]
    for name in generated:
        assert filecmp.cmp(tmp_path / package / name, ROOT / package / name, shallow=False), (
            f"{package / name} is stale: run python scripts/gen_proto.py"
        )


def test_health_and_reflection(daemon: Daemon) -> None:
    with grpc.insecure_channel(daemon.server) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "bitshare.v1.LeaseService", "bitshare.v1.AdminService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"bitshare.v1.LeaseService", "bitshare.v1.AdminService", "grpc.health.v1.Health"} <= names
