"""The ledger's model as the rest of the daemon sees it: the manager hands these out, copied.

Only daemon/state imports the ledger; services, the relay and enforcement take its types from here.
"""

from __future__ import annotations

from ..ledger import (
    ENDED_KEPT,
    Change,
    ChangeKind,
    Gpu,
    GpuFilter,
    InvalidRequest,
    Lease,
    LeaseNotFound,
    LeaseSpec,
    LeaseState,
    Ledger,
    LedgerError,
    NoCapacity,
    Policy,
    Size,
    Unsatisfiable,
    WrongState,
)

__all__ = [
    "ENDED_KEPT",
    "Change",
    "ChangeKind",
    "Gpu",
    "GpuFilter",
    "InvalidRequest",
    "Lease",
    "LeaseNotFound",
    "LeaseSpec",
    "LeaseState",
    "Ledger",
    "LedgerError",
    "NoCapacity",
    "Policy",
    "Size",
    "Unsatisfiable",
    "WrongState",
]
