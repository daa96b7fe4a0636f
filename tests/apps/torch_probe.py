"""Run on a lease: what PyTorch is told of the device, and how much it can allocate (one JSON line)."""

from __future__ import annotations

import json
import sys

import torch

MIB = 1024 * 1024
BLOCK_MIB = 256

free, total = torch.cuda.mem_get_info(0)
held = []
refused = ""
while True:
    try:
        held.append(torch.empty(BLOCK_MIB * MIB, dtype=torch.uint8, device="cuda"))
    except torch.cuda.OutOfMemoryError as exc:
        refused = str(exc).splitlines()[0]
        break
agent = sys.modules.get("bitshare_agent")
applied = agent._agent.applied if agent is not None and agent._agent is not None else []
print(
    json.dumps(
        {
            "total_mib": total // MIB,
            "free_mib": free // MIB,
            "allocated_mib": len(held) * BLOCK_MIB,
            "refused": refused,
            "agent": applied,
        }
    )
)
