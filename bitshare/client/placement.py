"""Where a request goes when the client knows a pool of daemons.

Each daemon owns its GPUs and nothing is shared between them, so placement is the
client's choice: the first daemon (in the pool's order) that can grant the lease now
gets it; when none can, the request waits in the queue of the first daemon that
could ever hold it.
"""

from __future__ import annotations

import dataclasses
import uuid

from ..errors import NoLease, Unreachable, Unsatisfiable
from ..protocol.v1 import bitshare_pb2 as pb
from .connection import Client, LeaseRequest


def place(pool: list[Client], request: LeaseRequest) -> tuple[Client, pb.Lease]:
    """Request the lease from the pool; returns the daemon that holds it (active or queued)."""
    if len(pool) == 1:
        return pool[0], pool[0].request(request)
    could_hold: list[Client] = []
    refusals: list[Unsatisfiable] = []
    lost: list[Unreachable] = []
    for client in pool:
        # A try that fails leaves nothing behind (wait=False); a fresh id keeps tries apart.
        attempt = dataclasses.replace(request, wait=False, request_id=uuid.uuid4().hex)
        try:
            return client, client.request(attempt)
        except NoLease:
            could_hold.append(client)
        except Unsatisfiable as exc:
            refusals.append(Unsatisfiable(f"{client.address}: {exc}"))
        except Unreachable as exc:
            lost.append(exc)  # went away since the pool was opened: the others may still do
    if not could_hold and not refusals:
        raise lost[0]
    if not could_hold:
        raise refusals[0] if len(refusals) == 1 else Unsatisfiable("; ".join(str(r) for r in refusals))
    if not request.wait:
        names = ", ".join(str(c.address) for c in could_hold)
        raise NoLease(f"no daemon of the pool has room for the request now ({names})")
    return could_hold[0], could_hold[0].request(request)
