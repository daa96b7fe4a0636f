"""What Slurm says of a job and a node (``scontrol show``), and the partition a job's GPUs become.

Pure text in, values out: the commands run in :mod:`bitshare.slurm.scontrol`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

# Fields whose values run to the end of their line and may hold spaces.
_WHOLE_LINE = ("AdminComment=", "Comment=", "Command=", "WorkDir=", "StdErr=", "StdIn=", "StdOut=", "Reason=")
_GRES_ITEM = re.compile(r"(?P<name>[A-Za-z0-9_]+)(?::(?P<type>[^:(,]+))?:(?P<count>[0-9]+)(?:\((?P<extra>[^)]*)\))?")


@dataclass(frozen=True)
class Gres:
    """One generic resource as Slurm counts it: ``gpu:2(IDX:0-1)`` is gpu, 2, (0, 1)."""

    name: str
    count: int
    indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class Job:
    id: str
    name: str = ""
    user: str = ""
    admin_comment: str = ""
    # Per-node detail (``scontrol -d``): the hostlist and the GRES allocated on each of its nodes.
    detail: tuple[tuple[str, str], ...] = ()

    def gres_on(self, node: str) -> list[Gres]:
        """The generic resources the job holds on ``node``."""
        for hosts, gres in self.detail:
            if node in expand_hostlist(hosts):
                return parse_gres(gres)
        return []


def parse_job(text: str) -> Job:
    """``scontrol -d show job ID`` (one job, the multi-line form)."""
    fields: dict[str, str] = {}
    detail: list[tuple[str, str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("Nodes=") and "GRES=" in stripped:
            pairs = _pairs(stripped)
            detail.append((pairs.get("Nodes", ""), pairs.get("GRES", "")))
            continue
        whole = next((key for key in _WHOLE_LINE if stripped.startswith(key)), None)
        if whole is not None:
            fields[whole[:-1]] = stripped[len(whole) :].strip()
            continue
        fields.update(_pairs(stripped))
    if "JobId" not in fields:
        raise UsageError("scontrol's answer names no job")
    user = fields.get("UserId", "")
    return Job(
        id=fields["JobId"],
        name=fields.get("JobName", ""),
        user=user.split("(", 1)[0],
        admin_comment=fields.get("AdminComment", ""),
        detail=tuple(detail),
    )


def _pairs(line: str) -> dict[str, str]:
    out = {}
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


def parse_gres(text: str) -> list[Gres]:
    """``gpu:1(IDX:0),shard:4(IDX:0)`` or ``gpu:a100:2(IDX:0-1)``; counts of 0 are left out."""
    found = []
    for match in _GRES_ITEM.finditer(text):
        count = int(match["count"])
        if not count:
            continue
        extra = match["extra"] or ""
        indices = _index_list(extra[4:]) if extra.startswith("IDX:") else ()
        found.append(Gres(match["name"], count, indices))
    return found


def _index_list(text: str) -> tuple[int, ...]:
    """``0-1,3`` -> (0, 1, 3)."""
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if low.isdigit():
            out.extend(range(int(low), int(high if high.isdigit() else low) + 1))
    return tuple(out)


def expand_hostlist(text: str) -> list[str]:
    """Slurm's hostlist: ``gpu[01-03,7],login`` -> gpu01, gpu02, gpu03, gpu7, login."""
    hosts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text + ","):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            if text[start:i]:
                hosts.extend(_expand_one(text[start:i]))
            start = i + 1
    return hosts


def _expand_one(name: str) -> list[str]:
    match = re.fullmatch(r"([^\[]*)\[([^\]]+)\](.*)", name)
    if not match:
        return [name]
    prefix, ranges, rest = match.groups()
    out = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        width = len(low)
        for number in range(int(low), int(high or low) + 1):
            out.extend(f"{prefix}{number:0{width}d}{tail}" for tail in _expand_one(rest))
    return out


def shards_per_gpu(node_gres: str) -> int | None:
    """Shards configured per GPU, from a node's ``Gres=gpu:4,shard:64`` (None: no shards)."""
    counts: dict[str, int] = {}
    for item in parse_gres(node_gres):
        counts[item.name] = counts.get(item.name, 0) + item.count
    gpus, shards = counts.get("gpu", 0), counts.get("shard", 0)
    if not shards or not gpus:
        return None
    if shards % gpus:
        raise UsageError(
            f"the node's {shards} shards do not divide evenly among its {gpus} GPUs: give --shards-per-gpu"
        )
    return shards // gpus


@dataclass(frozen=True)
class Ask:
    """The lease a job's GPUs on one node become."""

    gpu_count: int
    fraction: float
    indices: tuple[int, ...]


def lease_ask(gres: list[Gres], per_gpu: int | None) -> Ask | None:
    """Whole GPUs for ``gpu:N``; for ``shard:N``, N/K of the one GPU Slurm picked. None: no GPUs."""
    by_name = {item.name: item for item in gres}
    gpu, shard = by_name.get("gpu"), by_name.get("shard")
    if gpu is not None:
        if shard is not None:
            raise UsageError("the job holds both gpu and shard on this node; bitshare leases one or the other")
        indices = gpu.indices if len(gpu.indices) == gpu.count else ()
        return Ask(gpu.count, 1.0, indices)
    if shard is None:
        return None
    if per_gpu is None:
        raise UsageError("the job holds shards but the node declares no gpu and shard counts to divide")
    if len(shard.indices) > 1:
        raise UsageError(f"the job's {shard.count} shards span GPUs {shard.indices}; bitshare leases part of one GPU")
    if shard.count > per_gpu:
        raise UsageError(f"the job holds {shard.count} shards of a GPU that has {per_gpu}")
    return Ask(1, shard.count / per_gpu, shard.indices)
