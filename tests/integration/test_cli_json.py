"""``--json``: taken after every verb that prints, and carrying every field of what it prints, typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from bitshare.client.connection import LeaseRequest
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, run_cli

_INTEGERS = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
}


def _check_value(value: Any, field: FieldDescriptor, where: str) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            assert value is None or (isinstance(value, str) and value.endswith("Z")), (where, value)
        elif value is not None:
            assert_typed(value, field.message_type, where)
    elif value is None:
        assert field.containing_oneof is not None, f"{where} is null but is no unset oneof member"
    elif field.type in _INTEGERS:
        assert type(value) is int, (where, value)
    elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        assert type(value) in (int, float), (where, value)
    elif field.type == FieldDescriptor.TYPE_BOOL:
        assert type(value) is bool, (where, value)
    else:  # strings, and enums by name
        assert type(value) is str, (where, value)


def assert_typed(data: dict, descriptor: Descriptor, where: str = "") -> None:
    """Every field of the message is in ``data``, each with its JSON type (integers as numbers)."""
    where = where or descriptor.name
    missing = {field.name for field in descriptor.fields} - set(data)
    assert not missing, f"{where} lacks {sorted(missing)}"
    for field in descriptor.fields:
        value = data[field.name]
        if field.label == FieldDescriptor.LABEL_REPEATED:
            assert isinstance(value, list), (where, field.name, value)
            for i, item in enumerate(value):
                _check_value(item, field, f"{where}.{field.name}[{i}]")
        else:
            _check_value(value, field, f"{where}.{field.name}")


def _json(daemon: Daemon, *args: str, code: int = 0) -> Any:
    done = run_cli(daemon, *args)
    assert done.returncode == code, (args, done.stderr)
    return json.loads(done.stdout)


@pytest.fixture
def busy(daemon: Daemon) -> tuple[Daemon, pb.Lease, pb.Lease]:
    """A daemon with one active lease (the GPU full) and one queued request."""
    with daemon.client() as client:
        active = client.request(LeaseRequest(fraction=1.0, command="python infer.py"))
        queued = client.request(LeaseRequest(fraction=0.5))
    return daemon, active, queued


def test_listings_carry_every_field_typed(busy) -> None:
    daemon, active, queued = busy
    gpus = _json(daemon, "list-gpus", "--json")
    assert len(gpus) == 1
    assert gpus[0]["server"] == daemon.server
    assert_typed(gpus[0], pb.Gpu.DESCRIPTOR)
    assert (gpus[0]["index"], gpus[0]["drained"], gpus[0]["free_mib"]) == (0, False, 0)  # zero and false: present
    assert gpus[0]["total_mib"] == 16384 and gpus[0]["granted_mib"] == active.allocations[0].memory_mib

    leases = _json(daemon, "leases", "--json")
    assert {lease["id"] for lease in leases} == {active.id, queued.id}
    for lease in leases:
        assert_typed(lease, pb.Lease.DESCRIPTOR)
    by_id = {lease["id"]: lease for lease in leases}
    assert by_id[active.id]["state"] == "LEASE_STATE_ACTIVE" and by_id[active.id]["queue_position"] == 0
    assert by_id[active.id]["allocations"][0]["gpu_index"] == 0
    assert by_id[active.id]["ended_at"] is None and by_id[active.id]["granted_at"].endswith("Z")
    assert by_id[queued.id]["spec"]["fraction"] == 0.5 and by_id[queued.id]["spec"]["memory_mib"] is None

    waiting = _json(daemon, "queue", "--json")
    assert [lease["id"] for lease in waiting] == [queued.id]
    assert_typed(waiting[0], pb.Lease.DESCRIPTOR)

    events = _json(daemon, "events", "--limit", "2", "--json")
    assert [event["kind"] for event in events] == ["granted", "queued"]
    for event in events:
        assert_typed(event, pb.Event.DESCRIPTOR)

    smi = _json(daemon, "smi", "--json")
    assert_typed(smi[0]["info"], pb.ServerInfo.DESCRIPTOR)
    assert_typed(smi[0]["gpus"][0], pb.Gpu.DESCRIPTOR)
    assert smi[0]["gpus"][0]["index"] == 0

    health = _json(daemon, "health", "--json")
    assert health[0]["status"] == "SERVING"
    assert_typed(health[0]["info"], pb.ServerInfo.DESCRIPTOR)
    assert health[0]["info"]["gpu_count"] == 1

    version = _json(daemon, "version", "--json")
    assert isinstance(version["client"], str) and list(version["servers"]) == [daemon.server]


def test_every_verb_that_prints_takes_json_after_itself(busy, tmp_path: Path) -> None:
    daemon, active, queued = busy
    resized = _json(daemon, "lease", "resize", active.id, "-m", "4GiB", "--json")  # makes room: queued is granted
    assert_typed(resized, pb.Lease.DESCRIPTOR)
    assert resized["allocations"][0]["memory_mib"] == 4096

    with daemon.client() as client:
        later = client.request(LeaseRequest(fraction=1.0))
    moved = _json(daemon, "lease", "priority", later.id, "--json", "--", "-3")
    assert (moved["id"], moved["priority"], moved["queue_position"]) == (later.id, -3, 1)

    revoked = _json(daemon, "lease", "revoke", active.id, "--reason", "test", "--json")
    assert (revoked["state"], revoked["end_reason"]) == ("LEASE_STATE_REVOKED", "test")

    drained = _json(daemon, "gpu", "drain", "0", "--json")
    assert_typed(drained, pb.Gpu.DESCRIPTOR)
    assert (drained["index"], drained["drained"]) == (0, True)
    undrained = _json(daemon, "gpu", "undrain", "0", "--json")
    assert (undrained["index"], undrained["drained"]) == (0, False)

    with daemon.client() as client:
        client.release(queued.id)
        client.release(later.id)
    session = _json(daemon, "request-gpus", "-p", "0.25", "--json")
    assert_typed(session, pb.Lease.DESCRIPTOR)
    assert session["state"] == "LEASE_STATE_ACTIVE"
    released = _json(daemon, "release-gpus", "--json")
    assert [(lease["id"], lease["state"]) for lease in released["released"]] == [
        (session["id"], "LEASE_STATE_RELEASED")
    ]
    assert released["still_held"] == []

    token = _json(daemon, "token", "create", "--name", "ci", "--file", str(tmp_path / "tokens.toml"), "--json")
    assert (token["name"], token["role"], token["file"]) == ("ci", "client", str(tmp_path / "tokens.toml"))
    assert len(token["token"]) > 20 and token["token"] not in (tmp_path / "tokens.toml").read_text()


def test_json_before_the_verb_prints_the_same(busy) -> None:
    daemon, _, _ = busy
    for verb in (["list-gpus"], ["leases"], ["queue"], ["events", "--limit", "2"], ["health"]):
        before = _json(daemon, "--json", *verb)
        after = _json(daemon, *verb, "--json")
        strip = lambda items: [{k: v for k, v in i.items() if k not in ("info", "usage")} for i in items]  # noqa: E731
        assert strip(before) == strip(after), verb  # live figures (usage, uptime) aside
