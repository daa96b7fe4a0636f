"""Queue priorities: clients ask up to a configured ceiling, admins set any priority in range."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from bitshare.client.connection import LeaseRequest, connect
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, free_port, make_token, run_cli


class Site:
    """A daemon reachable over TCP with a client token and an admin token."""

    def __init__(self, make_daemon, tmp_path: Path, *args: str) -> None:
        tokens = tmp_path / "tokens.toml"
        self.client_token = make_token(tokens, "alice", "client")
        self.admin_token = make_token(tokens, "ops", "admin")
        self.tcp = f"127.0.0.1:{free_port()}"
        self.daemon: Daemon = make_daemon(
            "--simulate", "1x16GiB", "--listen", f"unix:{tmp_path}/d.sock", "--listen", self.tcp,
            "--tokens-file", str(tokens), *args,
        )  # fmt: skip

    def cli(self, token: str, *args: str):
        return run_cli(self.daemon, *args, server=self.tcp, env={**self.daemon.env, "BITSHARE_TOKEN": token})

    def leases(self) -> list[pb.Lease]:
        with connect(self.tcp, self.admin_token) as admin:
            return admin.all_leases()


def _one_line(done) -> str:
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_a_client_cannot_put_itself_ahead_of_the_queue(make_daemon, tmp_path: Path) -> None:
    site = Site(make_daemon, tmp_path)
    for args in (
        ["run", "--priority", "1", "-p", "0.25", "--", "true"],
        ["run", "--priority", "1000000", "-p", "0.25", "--", "true"],
        ["request-gpus", "--priority", "5", "-p", "0.25"],
    ):
        done = site.cli(site.client_token, *args)
        assert done.returncode == 77, (args, done.stderr)
        assert "above the clients' ceiling of 0 (max_client_priority)" in _one_line(done)
    assert site.leases() == []  # nothing was queued or granted
    with connect(site.tcp, site.client_token) as alice:
        spec = pb.LeaseSpec(gpu_count=1, fraction=0.25, priority=1)
        with pytest.raises(grpc.RpcError) as refused:
            alice.leases.RequestLease(pb.RequestLeaseRequest(spec=spec), metadata=alice.metadata)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert site.leases() == []
        for allowed in (0, -5):  # at or below the ceiling
            lease = alice.request(LeaseRequest(fraction=0.25, priority=allowed))
            assert lease.priority == allowed
            alice.release(lease.id)
    assert site.cli(site.client_token, "run", "-p", "0.25", "--", "true").returncode == 0


def test_admins_ask_any_priority_in_range(make_daemon, tmp_path: Path) -> None:
    site = Site(make_daemon, tmp_path)
    with connect(site.tcp, site.admin_token) as ops:
        ops.request(LeaseRequest(fraction=1.0))  # fill the GPU: what follows waits in the queue
        ahead = ops.request(LeaseRequest(fraction=0.5, priority=1_000_000))
        assert (ahead.state, ahead.priority) == (pb.LEASE_STATE_QUEUED, 1_000_000)
    local = run_cli(site.daemon, "request-gpus", "-p", "0.5", "--priority", "500", "--no-wait")
    assert local.returncode == 75, local.stderr  # an admin on the Unix socket (root) passes the ceiling too
    assert "above the clients' ceiling" not in local.stderr


def test_the_ceiling_is_a_daemon_setting(make_daemon, tmp_path: Path) -> None:
    config = tmp_path / "bitshare.toml"
    config.write_text("[queue]\nmax_client_priority = 10\n")
    site = Site(make_daemon, tmp_path, "--config", str(config))
    with connect(site.tcp, site.client_token) as alice:
        lease = alice.request(LeaseRequest(fraction=0.25, priority=10))
        assert lease.priority == 10
    done = site.cli(site.client_token, "run", "--priority", "11", "-p", "0.25", "--", "true")
    assert done.returncode == 77
    assert "above the clients' ceiling of 10" in _one_line(done)
    assert [lease.priority for lease in site.leases()] == [10]


def test_lease_priority_prints_the_priority_it_set(daemon: Daemon) -> None:
    with daemon.client() as client:
        client.request(LeaseRequest(fraction=1.0))
        waiting = client.request(LeaseRequest(fraction=1.0))
    done = run_cli(daemon, "lease", "priority", waiting.id, "10")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"lease {waiting.id} priority 10, queue position 1"
    queued = json.loads(run_cli(daemon, "queue", "--json").stdout)
    assert [(lease["id"], lease["priority"]) for lease in queued] == [(waiting.id, 10)]
