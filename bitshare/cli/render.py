"""Plain-text tables and JSON for the CLI."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ..present.ages import since
from ..present.gpu_lines import SIMULATED, gpu_lines
from ..present.leases import asked, command_line, measured, state_name
from ..present.table import table
from ..protocol.v1 import bitshare_pb2 as pb


def to_json(data: Any) -> str:
    """The one way the CLI writes JSON: protobuf messages (anywhere inside lists and dicts) become
    objects with every field, typed, as :func:`message_data` writes them."""
    return json.dumps(json_data(data), indent=2, allow_nan=False)


def json_data(data: Any) -> Any:
    """``data`` with its protobuf messages turned into plain dicts, ready for :func:`json.dumps`."""
    if isinstance(data, Message):
        return message_data(data)
    if isinstance(data, Mapping):
        return {str(key): json_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_data(item) for item in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None  # JSON has no NaN or infinity
    return data


def message_data(message: Message) -> dict[str, Any]:
    """Every field of ``message`` by its proto name: zero, false and empty values too (protobuf's
    own JSON leaves them out), 64-bit integers as numbers (it writes them as strings), an unset
    message or oneof member as null, enums by name, timestamps in RFC 3339."""
    return {field.name: _field_data(message, field) for field in message.DESCRIPTOR.fields}


def _field_data(message: Message, field: FieldDescriptor) -> Any:
    value = getattr(message, field.name)
    if field.label == FieldDescriptor.LABEL_REPEATED:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry = field.message_type.fields_by_name["value"]
            return {str(key): _single_data(item, entry) for key, item in value.items()}
        return [_single_data(item, field) for item in value]
    oneof = field.containing_oneof
    if oneof is not None and message.WhichOneof(oneof.name) != field.name:
        return None
    if field.type == FieldDescriptor.TYPE_MESSAGE and not message.HasField(field.name):
        return None
    return _single_data(value, field)


def _single_data(value: Any, field: FieldDescriptor) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return value.ToJsonString()
        return message_data(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else value
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return value if math.isfinite(value) else None  # JSON has no NaN or infinity
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def tagged(items: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Messages from several daemons, each with the ``server`` it came from."""
    return [{"server": server, **message_data(m)} for server, m in items]


def _servers_column(items: Sequence[tuple[str, Any]]) -> bool:
    return len({server for server, _ in items}) > 1


def leases_table(items: Sequence[tuple[str, pb.Lease]]) -> str:
    """Leases with the daemon each lives on (a SERVER column when there are several)."""
    rows = [
        [
            server,
            lease.id,
            lease.owner,
            state_name(lease.state),
            str(lease.queue_position) if lease.queue_position else "-",
            ",".join(str(a.gpu_index) for a in lease.allocations) or "-",
            asked(lease.spec),
            ",".join(str(a.memory_mib) for a in lease.allocations) or "-",
            lease.usage.used_mib if measured(lease) else "-",
            lease.usage.sm_pct if measured(lease) else "-",
            lease.enforcement or "-",
            lease.priority,
            since(lease.created_at),
            command_line(lease),
        ]
        for server, lease in items
    ]
    headers = [
        "SERVER",
        "LEASE",
        "OWNER",
        "STATE",
        "QPOS",
        "GPUS",
        "ASKED",
        "MIB",
        "USED",
        "SM%",
        "TIER",
        "PRIO",
        "AGE",
        "COMMAND",
    ]
    return _table_with_servers(headers, rows, _servers_column(items))


def gpus_table(items: Sequence[tuple[str, pb.Gpu]]) -> str:
    """GPUs with the daemon each belongs to (a SERVER column when there are several)."""
    rows = [
        [
            server,
            g.index,
            g.name,
            g.uuid,
            g.total_mib,
            g.capacity_mib,
            g.granted_mib,
            g.free_mib,
            g.used_mib,
            g.utilization_pct,
            len(g.partitions),
            ("drained" if g.drained else "ok") + (",mps" if g.mps else ""),
        ]
        for server, g in items
    ]
    headers = [
        "SERVER",
        "GPU",
        "NAME",
        "UUID",
        "TOTAL",
        "LENDABLE",
        "GRANTED",
        "FREE",
        "USED",
        "UTIL%",
        "LEASES",
        "STATE",
    ]
    return _table_with_servers(headers, rows, _servers_column(items))


def _table_with_servers(headers: list[str], rows: list[list[object]], with_server: bool) -> str:
    if with_server:
        return table(headers, rows)
    return table(headers[1:], [row[1:] for row in rows])


def smi(
    server: str,
    info: pb.ServerInfo,
    gpus: Sequence[pb.Gpu],
    leases: Sequence[pb.Lease] = (),
    history: Mapping[int, Sequence[float]] | None = None,
) -> str:
    """The console's GPU view as plain text: each GPU's panel, its utilisation ``history`` (per
    GPU index; the current figure alone without it) and the ``leases`` its partitions belong to."""
    kind = SIMULATED if info.simulated else info.backend
    out = [f"{server}: bitshared {info.version} on {info.hostname}  backend: {kind}  GPUs: {len(gpus)}"]
    by_id = {lease.id: lease for lease in leases}
    for gpu in gpus:
        points = (history or {}).get(gpu.index) or [gpu.utilization_pct]
        out += ["", f"GPU {gpu.index} · {gpu.name}"]
        out += ["  " + "".join(text for text, _ in line) for line in gpu_lines(gpu, by_id, points)]
    return "\n".join(out)
