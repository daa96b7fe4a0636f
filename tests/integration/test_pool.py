"""A client pool of two daemons: placement, listings across daemons, acting on a lease wherever it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bitshare.client.finding import connect_pool, load_settings
from bitshare.errors import BitshareError, Unreachable
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, run_cli, spawn_cli, wait_for
from ..support.holders import hold_command


def _pool(make_daemon) -> tuple[Daemon, Daemon, str]:
    first = make_daemon("--simulate", "1x16GiB", name="first")
    second = make_daemon("--simulate", "1x32GiB", name="second")
    return first, second, f"{first.server},{second.server}"


def _states(daemon: Daemon) -> list[int]:
    with daemon.client() as client:
        return [lease.state for lease in client.all_leases()]


def test_requests_go_to_the_first_daemon_with_room_then_queue_on_the_first_that_fits(make_daemon, tmp_path) -> None:
    first, second, pool = _pool(make_daemon)
    holders = [
        spawn_cli(first, "run", "-p", "1", "--", *hold_command(tmp_path / f"m{i}", tmp_path / f"stop{i}"), server=pool)
        for i in range(2)
    ]
    wait_for(lambda: (tmp_path / "m0").exists() and (tmp_path / "m1").exists(), 30, "two whole-GPU holders")
    assert _states(first) == [pb.LEASE_STATE_ACTIVE] and _states(second) == [pb.LEASE_STATE_ACTIVE]

    err = tmp_path / "third.err"
    third = spawn_cli(
        first, "run", "-p", "1", "--", *hold_command(tmp_path / "m2", tmp_path / "stop2"), server=pool, stderr_path=err
    )
    wait_for(lambda: "queued at position 1" in err.read_text(), 15, "the third request to queue")
    assert sorted(_states(first)) == [pb.LEASE_STATE_QUEUED, pb.LEASE_STATE_ACTIVE]  # queued on the first daemon
    busy = run_cli(first, "run", "-p", "1", "--no-wait", "--", "true", server=pool)
    assert busy.returncode == 75 and "no daemon of the pool has room" in busy.stderr
    assert sorted(_states(first)) == [pb.LEASE_STATE_QUEUED, pb.LEASE_STATE_ACTIVE]  # the tries left nothing

    listed = json.loads(run_cli(first, "list-gpus", "--json", server=pool).stdout)
    assert [(g["server"], int(g["total_mib"])) for g in listed] == [(first.server, 16384), (second.server, 32768)]
    table = run_cli(first, "leases", "--all", server=pool).stdout
    assert table.startswith("SERVER") and first.server in table and second.server in table

    # An admin verb finds the lease on whichever daemon holds it.
    second_lease = (tmp_path / "m0").read_text() if _holds(second, tmp_path / "m0") else (tmp_path / "m1").read_text()
    revoked = run_cli(first, "lease", "revoke", second_lease, server=pool)
    assert revoked.returncode == 0, revoked.stderr
    with second.client() as client:
        assert client.get(second_lease).state == pb.LEASE_STATE_REVOKED
    drain = run_cli(first, "gpu", "drain", "0", server=pool)
    assert drain.returncode == 2 and "name one with --server" in drain.stderr

    for i in range(3):
        (tmp_path / f"stop{i}").touch()
    for proc in [*holders, third]:
        proc.wait(timeout=30)


def _holds(daemon: Daemon, marker: Path) -> bool:
    with daemon.client() as client:
        return any(lease.id == marker.read_text() for lease in client.all_leases())


def test_sizes_only_one_daemon_can_hold_go_there(make_daemon) -> None:
    first, second, pool = _pool(make_daemon)
    done = run_cli(first, "run", "-m", "20GiB", "--", "sh", "-c", 'echo "$BITSHARE_SERVER"', server=pool)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == second.server
    too_big = run_cli(first, "run", "-m", "64GiB", "--", "true", server=pool)
    assert too_big.returncode == 2
    assert first.server in too_big.stderr and second.server in too_big.stderr


def test_an_unreachable_member_is_skipped(make_daemon, tmp_path) -> None:
    first = make_daemon("--simulate", "1x16GiB", name="first")
    pool = f"unix:{tmp_path}/gone.sock,{first.server}"
    done = run_cli(first, "run", "-p", "0.5", "--", "true", server=pool)
    assert done.returncode == 0, done.stderr
    assert "skipping" in done.stderr and "gone.sock" in done.stderr
    nobody = run_cli(first, "run", "-p", "0.5", "--", "true", server=f"unix:{tmp_path}/a.sock,unix:{tmp_path}/b.sock")
    assert nobody.returncode == 69


def test_a_session_lease_is_used_and_released_on_its_own_daemon(make_daemon) -> None:
    first, second, pool = _pool(make_daemon)
    requested = run_cli(first, "request-gpus", "-m", "20GiB", server=pool)
    assert requested.returncode == 0, requested.stderr
    lease_id = requested.stdout.strip()
    ran = run_cli(first, "client", "--", "sh", "-c", 'echo "$BITSHARE_LEASE_ID $BITSHARE_SERVER"', server=pool)
    assert ran.stdout.split() == [lease_id, second.server], ran.stderr
    assert run_cli(first, "release-gpus", server=pool).returncode == 0
    with second.client() as client:
        assert client.get(lease_id).state == pb.LEASE_STATE_RELEASED


def test_the_finder_connects_the_members_that_answer_and_names_those_that_do_not(make_daemon, tmp_path) -> None:
    first = make_daemon("--simulate", "1x16GiB", name="first")
    gone = f"unix:{tmp_path}/gone.sock"
    settings = load_settings([f"{gone},{first.server}"], environ={})
    assert settings.servers == (gone, first.server)
    clients, skipped = connect_pool(settings)
    try:
        assert [str(client.address) for client in clients] == [first.server]
        assert len(skipped) == 1 and "gone.sock" in str(skipped[0])
    finally:
        for client in clients:
            client.close()
    with pytest.raises(Unreachable, match=r"gone\.sock"):
        connect_pool(load_settings([gone], environ={}))


def test_servers_given_replace_the_configured_pool_and_credentials_fall_back_to_it(tmp_path) -> None:
    config = tmp_path / "client.toml"
    config.write_text('servers = ["gpu1:7443", "gpu2:7443"]\ntoken = "from-config"\n')
    configured = load_settings(config_path=config, environ={})
    assert configured.servers == ("gpu1:7443", "gpu2:7443")
    assert configured.credentials.token == "from-config"
    given = load_settings(["gpu3:7443", "gpu4:7443,gpu5:7443"], token="given", config_path=config, environ={})
    assert given.servers == ("gpu3:7443", "gpu4:7443", "gpu5:7443")
    assert given.credentials.token == "given"
    config.write_text("servers = 3\n")
    with pytest.raises(BitshareError) as refused:
        load_settings(config_path=config, environ={})
    assert refused.value.exit_code == 78 and str(config) in str(refused.value)
