"""The ledger's model as the rest of the daemon sees it: the manager hands these out, copied.

Only daemon/state imports the ledger; services, the relay and enforcement take its types from here.
"""

from __future__ import annotations

from ..ledger import (
    Change,
    ChangeKind,
    Gpu,
    GpuFilter,
    Lease,
    LeaseSpec,
    LeaseState,
    Policy,
    Size,
)

__all__ = [
    "Change",
    "ChangeKind",
    "Gpu",
    "GpuFilter",
    "Lease",
    "LeaseSpec",
    "LeaseState",
    "Policy",
    "Size",
]
